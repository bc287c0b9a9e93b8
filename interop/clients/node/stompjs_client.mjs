#!/usr/bin/env node
// Interop client for @stomp/stompjs over raw TCP (@stomp/tcp-wrapper).
//
// Usage: node stompjs_client.mjs HOST:PORT SCENARIO VERSION SUFFIX
//
// Runs one scenario of the interop contract (see interop/doc.go) with the
// stompjs Client used as an application would, and prints:
//   OBS <key> <json value>        an observation
//   OK <scenario>                 passed (exit 0)
//   FAIL <scenario>: <why>        failed (exit 1)
//   UNSUPPORTED <scenario>: <why> not expressible here (exit 2)
//
// VERSION 1.0 forces stompVersions ['1.0']; VERSION 1.2 leaves stompjs's
// default offer (1.2,1.1,1.0) and asserts 1.2 was negotiated. stompjs sends
// no `host` header unless told: STOMP_INTEROP_VHOST sets one. stompjs has no
// API for receipts on BEGIN/COMMIT and always gives SUBSCRIBE an id, so those
// parts of `receipt` and `v10` are left out (reported as OBS lines).
// Packages resolve from interop/node_modules (scripts/install-test-deps).
import { Client, Versions } from '@stomp/stompjs';
import { TCPWrapper } from '@stomp/tcp-wrapper';

const WAIT = Number(process.env.STOMP_INTEROP_WAIT_MS || 5000);
const QUIET = Number(process.env.STOMP_INTEROP_QUIET_MS || 1000);

class Fail extends Error {}
class Unsupported extends Error {}

function obs(key, value) {
  process.stdout.write(`OBS ${key} ${JSON.stringify(value)}\n`);
}

// Session: one stompjs Client plus the frames its callbacks collected.
class Session {
  constructor(addr, ver, name) {
    const i = addr.lastIndexOf(':');
    this.host = addr.slice(0, i);
    this.port = Number(addr.slice(i + 1));
    this.ver = ver;
    this.name = name;
    this.msgs = [];
    this.receipts = new Set();
    this.errors = [];
    this.waiters = [];
    this.subs = new Map();
  }

  notify() {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  // until: resolve once pred() is true; false when ms pass first.
  until(pred, ms) {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + ms;
      const check = () => {
        if (this.errors.length) {
          const f = this.errors[0];
          reject(new Fail(`${this.name}: ERROR frame: ${f.headers.message} ${f.body}`));
          return;
        }
        if (pred()) {
          resolve(true);
          return;
        }
        const left = deadline - Date.now();
        if (left <= 0) {
          resolve(false);
          return;
        }
        const t = setTimeout(check, left);
        this.waiters.push(() => {
          clearTimeout(t);
          check();
        });
      };
      check();
    });
  }

  async connect() {
    const connectHeaders = {};
    if (process.env.STOMP_INTEROP_VHOST) connectHeaders.host = process.env.STOMP_INTEROP_VHOST;
    let connected = null;
    this.client = new Client({
      webSocketFactory: () => new TCPWrapper(this.host, this.port),
      connectHeaders,
      stompVersions: this.ver === '1.0' ? new Versions(['1.0']) : Versions.default,
      reconnectDelay: 0,
      onConnect: (frame) => {
        connected = frame;
        this.notify();
      },
      onStompError: (frame) => {
        this.errors.push(frame);
        this.notify();
      },
      onUnhandledReceipt: (frame) => {
        this.receipts.add(frame.headers['receipt-id']);
        this.notify();
      },
      onUnhandledMessage: (m) => {
        this.errors.push({ headers: { message: 'MESSAGE for unknown subscription' }, body: m.body });
        this.notify();
      },
    });
    this.client.activate();
    if (!(await this.until(() => connected, WAIT))) {
      throw new Fail(`${this.name}: no CONNECTED within ${WAIT}ms`);
    }
    this.connected = connected.headers;
    if (this.ver === '1.2' && this.connected.version !== '1.2') {
      throw new Fail(`${this.name}: negotiated version ${this.connected.version}, want 1.2`);
    }
    return this.connected;
  }

  subscribe(dest, id, headers = {}) {
    const sub = this.client.subscribe(
      dest,
      (m) => {
        this.msgs.push(m);
        this.notify();
      },
      { ...headers, id },
    );
    this.subs.set(id, sub);
    return sub;
  }

  publish(dest, body, headers = {}) {
    this.client.publish({ destination: dest, body, headers });
  }

  async waitReceipt(rid) {
    if (!(await this.until(() => this.receipts.delete(rid), WAIT))) {
      throw new Fail(`${this.name}: no RECEIPT for ${rid} within ${WAIT}ms`);
    }
  }

  async nextMessage(ms = WAIT) {
    if (!(await this.until(() => this.msgs.length > 0, ms))) return null;
    return this.msgs.shift();
  }

  async expectBodies(...want) {
    const got = [];
    const frames = [];
    for (const w of want) {
      const m = await this.nextMessage();
      if (!m) throw new Fail(`${this.name}: got ${JSON.stringify(got)}, still waiting for ${w}`);
      got.push(m.body);
      frames.push(m);
    }
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Fail(`${this.name}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)} in that order`);
    }
    return frames;
  }

  async expectNone() {
    const m = await this.nextMessage(QUIET);
    if (m) throw new Fail(`${this.name}: unexpected MESSAGE ${JSON.stringify(m.body)}`);
  }

  // close: stompjs's deactivate sends DISCONNECT with its own receipt and
  // waits for it; onDisconnect receives that RECEIPT frame.
  async close() {
    let receipt = null;
    this.client.onDisconnect = (frame) => {
      receipt = frame;
      this.notify();
    };
    await this.client.deactivate();
    return receipt;
  }
}

async function session(addr, ver, name) {
  const s = new Session(addr, ver, name);
  await s.connect();
  return s;
}

async function produce(addr, ver, dest, bodies, headers = {}) {
  const p = await session(addr, ver, 'producer');
  for (let i = 0; i < bodies.length; i++) {
    p.publish(dest, bodies[i], { ...headers, receipt: `send-${i}` });
    await p.waitReceipt(`send-${i}`);
  }
  await p.close();
}

const subMode = (ver) => (ver === '1.0' ? 'client' : 'client-individual');

const SCENARIOS = {
  topic: ['topic', async (addr, ver, dest) => {
    const subs = [];
    for (const n of ['a', 'b']) {
      const s = await session(addr, ver, `sub-${n}`);
      s.subscribe(dest, `sub-${n}`, { receipt: `r-sub-${n}` });
      await s.waitReceipt(`r-sub-${n}`);
      subs.push(s);
    }
    const bodies = ['t1', 't2', 't3'];
    await produce(addr, ver, dest, bodies);
    for (const s of subs) {
      for (const m of await s.expectBodies(...bodies)) {
        if (m.headers.destination !== dest) throw new Fail(`${s.name}: MESSAGE destination ${m.headers.destination}`);
        if (ver !== '1.0' && m.headers.subscription !== s.name) {
          throw new Fail(`${s.name}: MESSAGE subscription ${m.headers.subscription}`);
        }
      }
      await s.expectNone();
      await s.close();
    }
  }],

  queue: ['queue', async (addr, ver, dest) => {
    await produce(addr, ver, dest, ['q1', 'q2']);
    const c = await session(addr, ver, 'consumer-1');
    c.subscribe(dest, 'c1', { ack: subMode(ver) });
    const f = await c.expectBodies('q1', 'q2');
    obs('message-headers', f[0].headers);
    f[0].ack();
    f[1].ack({ receipt: 'r-ack' });
    await c.waitReceipt('r-ack');
    await c.close();
    const c2 = await session(addr, ver, 'consumer-2');
    c2.subscribe(dest, 'c2');
    await c2.expectNone();
    await c2.close();
  }],

  receipt: ['queue', async (addr, ver, dest) => {
    const c = await session(addr, ver, 'client');
    const sub = c.subscribe(dest, 's1', { receipt: 'r-subscribe' });
    await c.waitReceipt('r-subscribe');
    c.publish(dest, 'r1', { receipt: 'r-send' });
    await c.waitReceipt('r-send');
    await c.expectBodies('r1');
    sub.unsubscribe({ receipt: 'r-unsubscribe' });
    await c.waitReceipt('r-unsubscribe');
    obs('not-expressible', 'stompjs begin()/commit() take no headers: no receipt on BEGIN/COMMIT');
    const r = await c.close();
    obs('disconnect-receipt', r && r.headers);
    if (!r || r.command !== 'RECEIPT') throw new Fail('no RECEIPT for DISCONNECT');
  }],

  'ack-client': ['queue', async (addr, ver, dest) => {
    await produce(addr, ver, dest, ['a1', 'a2', 'a3']);
    const c = await session(addr, ver, 'consumer-1');
    c.subscribe(dest, 'c1', { ack: 'client' });
    const f = await c.expectBodies('a1', 'a2', 'a3');
    f[1].ack({ receipt: 'r-ack' }); // cumulative: a1 and a2
    await c.waitReceipt('r-ack');
    await c.close(); // a3 stays unacknowledged
    const c2 = await session(addr, ver, 'consumer-2');
    c2.subscribe(dest, 'c2', { ack: 'client' });
    const [again] = await c2.expectBodies('a3');
    obs('redelivered', again.headers.redelivered);
    again.ack({ receipt: 'r-ack2' });
    await c2.waitReceipt('r-ack2');
    await c2.expectNone();
    await c2.close();
  }],

  'nack-redeliver': ['queue', async (addr, ver, dest) => {
    if (ver === '1.0') throw new Unsupported('NACK does not exist in STOMP 1.0');
    await produce(addr, ver, dest, ['n1']);
    const c = await session(addr, ver, 'consumer');
    c.subscribe(dest, 'c1', { ack: 'client-individual' });
    const [first] = await c.expectBodies('n1');
    obs('first-redelivered', first.headers.redelivered);
    first.nack({ receipt: 'r-nack' });
    await c.waitReceipt('r-nack');
    const again = await c.nextMessage();
    if (!again) throw new Fail(`NACKed message was not delivered again within ${WAIT}ms`);
    obs('second-headers', again.headers);
    if (again.body !== 'n1') throw new Fail(`redelivered body ${again.body}, want n1`);
    if (again.headers.redelivered !== 'true') {
      throw new Fail(`redelivered header ${JSON.stringify(again.headers.redelivered)}, want 'true'`);
    }
    again.ack({ receipt: 'r-ack' });
    await c.waitReceipt('r-ack');
    await c.close();
    const c2 = await session(addr, ver, 'consumer-2');
    c2.subscribe(dest, 'c2');
    await c2.expectNone();
    await c2.close();
  }],

  transaction: ['queue', async (addr, ver, dest) => {
    const c = await session(addr, ver, 'consumer');
    c.subscribe(dest, 'c1', { receipt: 'r-sub' });
    await c.waitReceipt('r-sub');
    const p = await session(addr, ver, 'producer');
    const txAbort = p.client.begin('tx-abort');
    const txCommit = p.client.begin('tx-commit');
    p.publish(dest, 'x1', { transaction: txCommit.id });
    p.publish(dest, 'y1', { transaction: txAbort.id });
    p.publish(dest, 'x2', { transaction: txCommit.id });
    p.publish(dest, 'y2', { transaction: txAbort.id });
    // Sync point: a receipted SEND outside any transaction, to a topic no one
    // reads (stompjs cannot put a receipt on BEGIN, and RabbitMQ holds back
    // receipts for transactional SENDs until COMMIT).
    p.publish(`${dest.replace('/queue/', '/topic/')}.sync`, 'sync', { receipt: 'r-sync' });
    await p.waitReceipt('r-sync');
    await c.expectNone(); // nothing visible before COMMIT
    txAbort.abort();
    txCommit.commit();
    await c.expectBodies('x1', 'x2');
    await c.expectNone();
    await p.close();
    await c.close();
  }],

  headers: ['topic', async (addr, ver, dest) => {
    const c = await session(addr, ver, 'consumer');
    c.subscribe(dest, 'c1', { receipt: 'r-sub' });
    await c.waitReceipt('r-sub');
    const want = { 'x-interop-plain': 'plain-value' };
    if (ver !== '1.0') want['x-interop-tricky'] = 'a:b\nc\\d';
    await produce(addr, ver, dest, ['h1'], want);
    const [m] = await c.expectBodies('h1');
    obs('message-headers', m.headers);
    for (const [k, v] of Object.entries(want)) {
      if (m.headers[k] !== v) throw new Fail(`header ${k}: got ${JSON.stringify(m.headers[k])}, want ${JSON.stringify(v)}`);
    }
    await c.close();
  }],

  v10: ['queue', async (addr, ver, dest) => {
    if (ver !== '1.0') throw new Unsupported('v10 runs only with VERSION 1.0');
    const c = await session(addr, ver, 'consumer');
    obs('connected-headers', c.connected);
    const v = c.connected.version || '1.0';
    if (v !== '1.0') throw new Fail(`CONNECTED version ${v} for a 1.0 client`);
    obs('not-expressible', 'stompjs always sends an id on SUBSCRIBE');
    const sub = c.subscribe(dest, 'v10-sub', { ack: 'client', receipt: 'r-sub' });
    await c.waitReceipt('r-sub');
    await produce(addr, ver, dest, ['v1']);
    const [m] = await c.expectBodies('v1');
    obs('message-headers', m.headers);
    m.ack({ receipt: 'r-ack' });
    await c.waitReceipt('r-ack');
    sub.unsubscribe({ receipt: 'r-unsub' });
    await c.waitReceipt('r-unsub');
    await c.close();
  }],
};

async function main(argv) {
  if (argv.length !== 4) {
    process.stderr.write('usage: stompjs_client.mjs HOST:PORT SCENARIO VERSION SUFFIX\n');
    return 2;
  }
  const [addr, name, ver, suffix] = argv;
  const sc = SCENARIOS[name];
  if (!sc) {
    process.stdout.write(`UNSUPPORTED ${name}: unknown scenario\n`);
    return 2;
  }
  if (ver !== '1.0' && ver !== '1.2') {
    process.stdout.write(`UNSUPPORTED ${name}: version ${ver}\n`);
    return 2;
  }
  const dest = `/${sc[0]}/interop.node.${name}.v${ver.replace('.', '')}.${suffix}`;
  obs('destination', dest);
  try {
    await sc[1](addr, ver, dest);
  } catch (e) {
    if (e instanceof Unsupported) {
      process.stdout.write(`UNSUPPORTED ${name}: ${e.message}\n`);
      return 2;
    }
    process.stdout.write(`FAIL ${name}: ${e.constructor.name}: ${String(e.message).replace(/\n/g, ' ')}\n`);
    return 1;
  }
  process.stdout.write(`OK ${name}\n`);
  return 0;
}

// Exit explicitly: a failed scenario may leave a socket or timer open.
main(process.argv.slice(2)).then((code) => process.exit(code));
