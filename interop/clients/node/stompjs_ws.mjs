#!/usr/bin/env node
// STOMP-over-WebSocket client for the integration tests: @stomp/stompjs
// under Node, with the `ws` package as its WebSocket (Node 20 has no
// global one).
//
// Usage: node stompjs_ws.mjs URL TOPIC QUEUE BACK
//
// Subscribes to TOPIC and QUEUE (with receipts) and prints READY once both
// are in place; prints "GOT <destination> <body>" per message; after two
// messages sends "from node" to BACK, prints SENT, disconnects and exits 0.
// A STOMP ERROR or a closed WebSocket prints "FAIL <why>" and exits 1.
// Packages resolve from interop/node_modules (scripts/install-test-deps).
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const [url, topic, queue, back] = process.argv.slice(2);
let done = false;

function fail(why) {
  if (done) return;
  process.stdout.write(`FAIL ${why}\n`);
  process.exit(1);
}

const client = new Client({
  webSocketFactory: () => new WebSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
  reconnectDelay: 0,
  heartbeatIncoming: 0,
  heartbeatOutgoing: 0,
  onConnect: () => {
    let got = 0;
    client.watchForReceipt('r-queue', () => process.stdout.write('READY\n'));
    for (const [dest, receipt] of [[topic, 'r-topic'], [queue, 'r-queue']]) {
      client.subscribe(dest, async (m) => {
        process.stdout.write(`GOT ${dest} ${m.body}\n`);
        if (++got === 2) {
          client.publish({ destination: back, body: 'from node' });
          process.stdout.write('SENT\n');
          done = true;
          await client.deactivate();
          process.exit(0);
        }
      }, { receipt });
    }
  },
  onStompError: (f) => fail(`ERROR ${f.headers.message}`),
  onWebSocketClose: (e) => fail(`websocket closed (${e.code})`),
});
client.activate();
