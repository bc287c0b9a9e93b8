#!/usr/bin/ruby
# Interop client for the Ruby stomp gem (Debian package ruby-stomp).
#
# Usage: stomp_gem_client.rb HOST:PORT SCENARIO VERSION SUFFIX
#
# Runs one scenario of the interop contract (see interop/doc.go) with
# Stomp::Connection used as an application would, and prints:
#   OBS <key> <json value>        an observation
#   OK <scenario>                 passed (exit 0)
#   FAIL <scenario>: <why>        failed (exit 1)
#   UNSUPPORTED <scenario>: <why> not expressible here (exit 2)
#
# VERSION 1.0: no connect headers at all (the gem then speaks 1.0 and sends no
# accept-version and no host). VERSION 1.2: connect_headers accept-version
# 1.2 and host, which the gem insists on for 1.1+; host is the server's
# address unless STOMP_INTEROP_VHOST is set. Waits are bounded by
# STOMP_INTEROP_WAIT_MS (default 5000) and STOMP_INTEROP_QUIET_MS (1000).
require 'stomp'
require 'json'

WAIT = Integer(ENV.fetch('STOMP_INTEROP_WAIT_MS', '5000')) / 1000.0
QUIET = Integer(ENV.fetch('STOMP_INTEROP_QUIET_MS', '1000')) / 1000.0

class Fail < StandardError; end
class Unsupported < StandardError; end

def obs(key, value)
  puts "OBS #{key} #{JSON.generate(value)}"
end

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

# Session: one Stomp::Connection plus frames read but not yet consumed.
class Session
  attr_reader :conn, :name, :ver

  def initialize(addr, ver, name)
    host, port = addr.split(/:(?=\d+\z)/)
    @ver = ver
    @name = name
    @msgs = []
    @receipts = {}
    hdrs = {}
    if ver == '1.2'
      vhost = ENV.fetch('STOMP_INTEROP_VHOST', '')
      hdrs = { 'accept-version': '1.2', host: vhost.empty? ? host : vhost }
    end
    @conn = Stomp::Connection.new(
      hosts: [{ login: '', passcode: '', host: host, port: Integer(port) }],
      connect_headers: hdrs, reliable: false, connect_timeout: WAIT.ceil
    )
    f = @conn.connection_frame
    if f.nil? || f.command != 'CONNECTED'
      raise Fail, "#{name}: connect refused: #{f && f.headers['message']} #{f && f.body}"
    end
  end

  def connected_headers
    @conn.connection_frame.headers
  end

  # read_one: wait up to timeout seconds for one frame and file it.
  def read_one(timeout)
    deadline = now + timeout
    while (f = @conn.poll).nil?
      return false if now >= deadline

      sleep 0.01
    end
    case f.command
    when 'MESSAGE' then @msgs << f
    when 'RECEIPT' then @receipts[f.headers['receipt-id']] = true
    when 'ERROR' then raise Fail, "#{@name}: ERROR frame: #{f.headers['message']} #{f.body}"
    else raise Fail, "#{@name}: unexpected frame #{f.command}"
    end
    true
  end

  def wait_receipt(rid)
    deadline = now + WAIT
    until @receipts.delete(rid)
      left = deadline - now
      raise Fail, "#{@name}: no RECEIPT for #{rid} within #{WAIT}s" if left <= 0

      read_one(left)
    end
  end

  def next_message(timeout = WAIT)
    deadline = now + timeout
    while @msgs.empty?
      left = deadline - now
      return nil if left <= 0

      read_one(left)
    end
    @msgs.shift
  end

  def expect_bodies(*want)
    got = []
    frames = want.map do |w|
      f = next_message
      raise Fail, "#{@name}: got #{got}, still waiting for #{w}" unless f

      got << f.body
      f
    end
    raise Fail, "#{@name}: got #{got}, want #{want} in that order" unless got == want

    frames
  end

  def expect_none
    f = next_message(QUIET)
    raise Fail, "#{@name}: unexpected MESSAGE #{f.body.inspect}" if f
  end

  def subscribe(dest, id, headers = {})
    if id.nil?
      @conn.subscribe(dest, headers) # 1.0 allows a subscription without id
    else
      @conn.subscribe(dest, headers.merge(id: id))
    end
  end

  # ack: the gem wants the message-id on 1.0 and the MESSAGE's ack header on 1.2.
  def ack(frame, headers = {})
    if @ver == '1.0'
      @conn.ack(frame.headers['message-id'], headers)
    else
      raise Fail, "#{@name}: 1.2 MESSAGE without ack header" unless frame.headers['ack']

      @conn.ack(frame.headers['ack'], headers)
    end
  end

  def nack(frame, headers = {})
    @conn.nack(frame.headers['ack'], headers)
  end

  # close: DISCONNECT with a receipt; the gem reads one frame as the receipt.
  def close
    @conn.disconnect(receipt: "bye-#{@name}")
    r = @conn.disconnect_receipt
    return if r && r.command == 'RECEIPT' && r.headers['receipt-id'] == "bye-#{@name}"

    raise Fail, "#{@name}: DISCONNECT receipt: got #{r && r.command} #{r && r.headers}"
  end
end

def produce(addr, ver, dest, bodies, headers = {})
  p = Session.new(addr, ver, 'producer')
  bodies.each_with_index do |b, i|
    p.conn.publish(dest, b, headers.merge(receipt: "send-#{i}"))
    p.wait_receipt("send-#{i}")
  end
  p.close
end

def sub_mode(ver)
  ver == '1.0' ? 'client' : 'client-individual'
end

SCENARIOS = {}

SCENARIOS['topic'] = ['topic', lambda do |addr, ver, dest|
  subs = %w[a b].map do |n|
    s = Session.new(addr, ver, "sub-#{n}")
    s.subscribe(dest, "sub-#{n}", receipt: "r-sub-#{n}")
    s.wait_receipt("r-sub-#{n}")
    s
  end
  bodies = %w[t1 t2 t3]
  produce(addr, ver, dest, bodies)
  subs.each do |s|
    s.expect_bodies(*bodies).each do |f|
      raise Fail, "#{s.name}: MESSAGE destination #{f.headers['destination']}" if f.headers['destination'] != dest
      if ver != '1.0' && f.headers['subscription'] != s.name
        raise Fail, "#{s.name}: MESSAGE subscription #{f.headers['subscription']}"
      end
    end
    s.expect_none
    s.close
  end
end]

SCENARIOS['queue'] = ['queue', lambda do |addr, ver, dest|
  produce(addr, ver, dest, %w[q1 q2])
  c = Session.new(addr, ver, 'consumer-1')
  c.subscribe(dest, 'c1', ack: sub_mode(ver))
  f = c.expect_bodies('q1', 'q2')
  obs('message-headers', f[0].headers)
  c.ack(f[0])
  c.ack(f[1], receipt: 'r-ack')
  c.wait_receipt('r-ack')
  c.close
  c2 = Session.new(addr, ver, 'consumer-2')
  c2.subscribe(dest, 'c2')
  c2.expect_none
  c2.close
end]

SCENARIOS['receipt'] = ['queue', lambda do |addr, ver, dest|
  c = Session.new(addr, ver, 'client')
  c.subscribe(dest, 's1', receipt: 'r-subscribe')
  c.wait_receipt('r-subscribe')
  c.conn.publish(dest, 'r1', receipt: 'r-send')
  c.wait_receipt('r-send')
  c.expect_bodies('r1')
  c.conn.unsubscribe(dest, { id: 's1', receipt: 'r-unsubscribe' })
  c.wait_receipt('r-unsubscribe')
  c.conn.begin('tx-r', receipt: 'r-begin')
  c.wait_receipt('r-begin')
  c.conn.commit('tx-r', receipt: 'r-commit')
  c.wait_receipt('r-commit')
  c.conn.disconnect(receipt: 'r-disconnect')
  r = c.conn.disconnect_receipt
  unless r && r.command == 'RECEIPT' && r.headers['receipt-id'] == 'r-disconnect'
    raise Fail, "DISCONNECT receipt: got #{r && r.command} #{r && r.headers}"
  end
end]

SCENARIOS['ack-client'] = ['queue', lambda do |addr, ver, dest|
  produce(addr, ver, dest, %w[a1 a2 a3])
  c = Session.new(addr, ver, 'consumer-1')
  c.subscribe(dest, 'c1', ack: 'client')
  f = c.expect_bodies('a1', 'a2', 'a3')
  c.ack(f[1], receipt: 'r-ack') # cumulative: a1 and a2
  c.wait_receipt('r-ack')
  c.close # a3 stays unacknowledged
  c2 = Session.new(addr, ver, 'consumer-2')
  c2.subscribe(dest, 'c2', ack: 'client')
  again = c2.expect_bodies('a3')[0]
  obs('redelivered', again.headers['redelivered'])
  c2.ack(again, receipt: 'r-ack2')
  c2.wait_receipt('r-ack2')
  c2.expect_none
  c2.close
end]

SCENARIOS['nack-redeliver'] = ['queue', lambda do |addr, ver, dest|
  raise Unsupported, 'NACK does not exist in STOMP 1.0' if ver == '1.0'

  produce(addr, ver, dest, ['n1'])
  c = Session.new(addr, ver, 'consumer')
  c.subscribe(dest, 'c1', ack: 'client-individual')
  first = c.expect_bodies('n1')[0]
  obs('first-redelivered', first.headers['redelivered'])
  c.nack(first, receipt: 'r-nack')
  c.wait_receipt('r-nack')
  again = c.next_message
  raise Fail, "NACKed message was not delivered again within #{WAIT}s" unless again

  obs('second-headers', again.headers)
  raise Fail, "redelivered body #{again.body.inspect}, want n1" unless again.body == 'n1'
  unless again.headers['redelivered'] == 'true'
    raise Fail, "redelivered header #{again.headers['redelivered'].inspect}, want 'true'"
  end

  c.ack(again, receipt: 'r-ack')
  c.wait_receipt('r-ack')
  c.close
  c2 = Session.new(addr, ver, 'consumer-2')
  c2.subscribe(dest, 'c2')
  c2.expect_none
  c2.close
end]

SCENARIOS['transaction'] = ['queue', lambda do |addr, ver, dest|
  c = Session.new(addr, ver, 'consumer')
  c.subscribe(dest, 'c1', receipt: 'r-sub')
  c.wait_receipt('r-sub')
  p = Session.new(addr, ver, 'producer')
  p.conn.begin('tx-abort')
  p.conn.begin('tx-commit')
  p.conn.publish(dest, 'x1', transaction: 'tx-commit')
  p.conn.publish(dest, 'y1', transaction: 'tx-abort')
  p.conn.publish(dest, 'x2', transaction: 'tx-commit')
  p.conn.publish(dest, 'y2', transaction: 'tx-abort')
  # Sync point on a non-transactional frame (RabbitMQ holds back receipts for
  # transactional SENDs until COMMIT).
  p.conn.begin('tx-sync', receipt: 'r-sync')
  p.wait_receipt('r-sync')
  c.expect_none # nothing visible before COMMIT
  p.conn.abort('tx-abort')
  p.conn.commit('tx-commit', receipt: 'r-commit')
  p.wait_receipt('r-commit')
  c.expect_bodies('x1', 'x2')
  c.expect_none
  p.conn.abort('tx-sync')
  p.close
  c.close
end]

TRICKY = "a:b\nc\\d".freeze

SCENARIOS['headers'] = ['topic', lambda do |addr, ver, dest|
  c = Session.new(addr, ver, 'consumer')
  c.subscribe(dest, 'c1', receipt: 'r-sub')
  c.wait_receipt('r-sub')
  want = { 'x-interop-plain' => 'plain-value' }
  want['x-interop-tricky'] = TRICKY if ver == '1.2'
  produce(addr, ver, dest, ['h1'], want.transform_keys(&:to_sym))
  got = c.expect_bodies('h1')[0].headers
  obs('message-headers', got)
  want.each do |k, v|
    raise Fail, "header #{k}: got #{got[k].inspect}, want #{v.inspect}" unless got[k] == v
  end
  c.close
end]

SCENARIOS['v10'] = ['queue', lambda do |addr, ver, dest|
  raise Unsupported, 'v10 runs only with VERSION 1.0' unless ver == '1.0'

  c = Session.new(addr, ver, 'consumer')
  obs('connected-headers', c.connected_headers)
  v = c.connected_headers['version'] || '1.0'
  raise Fail, "CONNECTED version #{v} for a 1.0 client" unless v == '1.0'

  c.subscribe(dest, nil, ack: 'client', receipt: 'r-sub') # 1.0: no id
  c.wait_receipt('r-sub')
  produce(addr, ver, dest, ['v1'])
  f = c.expect_bodies('v1')[0]
  obs('message-headers', f.headers)
  c.ack(f, receipt: 'r-ack')
  c.wait_receipt('r-ack')
  c.conn.unsubscribe(dest, receipt: 'r-unsub')
  c.wait_receipt('r-unsub')
  c.close
end]

def main(argv)
  if argv.size != 4
    warn "usage: #{$PROGRAM_NAME} HOST:PORT SCENARIO VERSION SUFFIX"
    return 2
  end
  addr, name, ver, suffix = argv
  kind, fn = SCENARIOS[name]
  unless fn
    puts "UNSUPPORTED #{name}: unknown scenario"
    return 2
  end
  unless %w[1.0 1.2].include?(ver)
    puts "UNSUPPORTED #{name}: version #{ver}"
    return 2
  end
  dest = "/#{kind}/interop.ruby.#{name}.v#{ver.delete('.')}.#{suffix}"
  obs('destination', dest)
  begin
    fn.call(addr, ver, dest)
  rescue Unsupported => e
    puts "UNSUPPORTED #{name}: #{e.message}"
    return 2
  rescue StandardError => e
    puts "FAIL #{name}: #{e.class}: #{e.message.gsub("\n", ' ')}"
    return 1
  end
  puts "OK #{name}"
  0
end

$stdout.sync = true
exit main(ARGV)
