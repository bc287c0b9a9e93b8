#!/usr/bin/perl
# Interop client for Net::Stomp (Debian package libnet-stomp-perl).
#
# Usage: net_stomp_client.pl HOST:PORT SCENARIO VERSION SUFFIX
#
# Runs one scenario of the interop contract (see interop/doc.go) with
# Net::Stomp used as an application would, and prints machine-checkable lines:
#   OBS <key> <json value>        an observation
#   OK <scenario>                 passed (exit 0)
#   FAIL <scenario>: <why>        failed (exit 1)
#   UNSUPPORTED <scenario>: <why> not expressible here (exit 2)
#
# Net::Stomp is a STOMP 1.0 library: it sends exactly the CONNECT headers it is
# given, never escapes or unescapes header values, and always puts
# `message-id` on ACK/NACK. VERSION 1.0 uses it plainly. VERSION 1.2 is how a
# Net::Stomp user talks to a 1.2 broker: pass `accept-version` and `host`
# (the server's address, or STOMP_INTEROP_VHOST) to connect, add `id` (the
# MESSAGE's `ack` header) to ACK/NACK, and escape/unescape header values by
# hand. Waits are bounded by STOMP_INTEROP_WAIT_MS (default 5000) and
# STOMP_INTEROP_QUIET_MS (default 1000).
use strict;
use warnings;
use Net::Stomp;
use Net::Stomp::Frame;
use JSON::PP;
use Time::HiRes qw(time);

my $WAIT  = ($ENV{STOMP_INTEROP_WAIT_MS}  || 5000) / 1000;
my $QUIET = ($ENV{STOMP_INTEROP_QUIET_MS} || 1000) / 1000;
my $JSON  = JSON::PP->new->canonical->allow_nonref;

sub obs { my ($k, $v) = @_; print "OBS $k ", $JSON->encode($v), "\n"; }

# Sessions: one Net::Stomp connection plus frames read but not yet consumed.
sub session {
    my ($addr, $ver, $name) = @_;
    my ($host, $port) = $addr =~ /^(.*):(\d+)$/ or die "bad address $addr\n";
    my $stomp = Net::Stomp->new({ hostname => $host, port => $port,
                                  reconnect_attempts => 1 });
    my %hdr;
    if ($ver eq '1.2') {
        %hdr = ('accept-version' => '1.2',
                host => ($ENV{STOMP_INTEROP_VHOST} || $host));
    }
    my $f = $stomp->connect(\%hdr);
    die "$name: no CONNECTED frame\n" unless $f;
    die "$name: connect refused: " . ($f->headers->{message} // '') . ' ' . ($f->body // '') . "\n"
        unless $f->command eq 'CONNECTED';
    return { stomp => $stomp, ver => $ver, name => $name, msgs => [],
             receipts => {}, connected => $f->headers };
}

# read_one: read one frame (bounded by $timeout) and file it; 0 on timeout.
sub read_one {
    my ($s, $timeout) = @_;
    my $f = $s->{stomp}->receive_frame({ timeout => $timeout });
    return 0 unless $f;
    my $cmd = $f->command;
    if ($cmd eq 'MESSAGE') { push @{ $s->{msgs} }, $f }
    elsif ($cmd eq 'RECEIPT') { $s->{receipts}{ $f->headers->{'receipt-id'} } = 1 }
    elsif ($cmd eq 'ERROR') {
        die "$s->{name}: ERROR frame: " . ($f->headers->{message} // '') . ' ' . ($f->body // '') . "\n";
    }
    else { die "$s->{name}: unexpected frame $cmd\n" }
    return 1;
}

sub wait_receipt {
    my ($s, $rid) = @_;
    my $deadline = time + $WAIT;
    until ($s->{receipts}{$rid}) {
        my $left = $deadline - time;
        die "$s->{name}: no RECEIPT for $rid within ${WAIT}s\n" if $left <= 0;
        read_one($s, $left);
    }
    delete $s->{receipts}{$rid};
}

sub next_message {
    my ($s, $timeout) = @_;
    my $deadline = time + (defined $timeout ? $timeout : $WAIT);
    until (@{ $s->{msgs} }) {
        my $left = $deadline - time;
        return undef if $left <= 0;
        read_one($s, $left);
    }
    return shift @{ $s->{msgs} };
}

sub expect_bodies {
    my ($s, @want) = @_;
    my (@got, @frames);
    for my $w (@want) {
        my $f = next_message($s);
        die "$s->{name}: got [@got], still waiting for $w\n" unless $f;
        push @got, $f->body // '';
        push @frames, $f;
    }
    die "$s->{name}: got [@got], want [@want] in that order\n" if "@got" ne "@want";
    return @frames;
}

sub expect_none {
    my ($s) = @_;
    my $f = next_message($s, $QUIET);
    die "$s->{name}: unexpected MESSAGE " . ($f->body // '') . "\n" if $f;
}

# raw: send a frame Net::Stomp has no method for (BEGIN, COMMIT, ...).
sub raw {
    my ($s, $cmd, %h) = @_;
    $s->{stomp}->send_frame(Net::Stomp::Frame->new({ command => $cmd, headers => \%h }));
}

sub subscribe {
    my ($s, %h) = @_;
    $s->{stomp}->subscribe(\%h);
}

sub ack_msg {
    my ($s, $f, %extra) = @_;
    # Net::Stomp always adds message-id; a 1.2 broker needs id = the ack header.
    if ($s->{ver} eq '1.2') {
        die "$s->{name}: 1.2 MESSAGE without ack header\n" unless defined $f->headers->{ack};
        $extra{id} = $f->headers->{ack};
    }
    $s->{stomp}->ack({ frame => $f, %extra });
}

sub nack_msg {
    my ($s, $f, %extra) = @_;
    $extra{id} = $f->headers->{ack} if $s->{ver} eq '1.2';
    $s->{stomp}->nack({ frame => $f, %extra });
}

# disconnect with a receipt: Net::Stomp's disconnect() sends none, so send the
# frame by hand, wait for the RECEIPT, then let disconnect() close the socket.
sub close_session {
    my ($s) = @_;
    raw($s, 'DISCONNECT', receipt => "bye-$s->{name}");
    wait_receipt($s, "bye-$s->{name}");
    $s->{stomp}->socket->close;
}

sub produce {
    my ($addr, $ver, $dest, $bodies, %h) = @_;
    my $p = session($addr, $ver, 'producer');
    my $i = 0;
    for my $b (@$bodies) {
        my $rid = 'send-' . $i++;
        $p->{stomp}->send({ destination => $dest, body => $b, receipt => $rid, %h });
        wait_receipt($p, $rid);
    }
    close_session($p);
}

sub sub_mode { $_[0] eq '1.0' ? 'client' : 'client-individual' }

my %scenario;

$scenario{topic} = [ topic => sub {
    my ($addr, $ver, $dest) = @_;
    my @subs;
    for my $n (qw(a b)) {
        my $s = session($addr, $ver, "sub-$n");
        subscribe($s, destination => $dest, id => "sub-$n", receipt => "r-sub-$n");
        wait_receipt($s, "r-sub-$n");
        push @subs, $s;
    }
    my @bodies = qw(t1 t2 t3);
    produce($addr, $ver, $dest, \@bodies);
    for my $s (@subs) {
        for my $f (expect_bodies($s, @bodies)) {
            my $d = $f->headers->{destination} // '';
            die "$s->{name}: MESSAGE destination $d\n" if $d ne $dest;
            my $sid = $f->headers->{subscription} // '';
            die "$s->{name}: MESSAGE subscription '$sid'\n" if $ver ne '1.0' && $sid ne $s->{name};
        }
        expect_none($s);
        close_session($s);
    }
} ];

$scenario{queue} = [ queue => sub {
    my ($addr, $ver, $dest) = @_;
    produce($addr, $ver, $dest, [qw(q1 q2)]);
    my $c = session($addr, $ver, 'consumer-1');
    subscribe($c, destination => $dest, id => 'c1', ack => sub_mode($ver));
    my @f = expect_bodies($c, qw(q1 q2));
    obs('message-headers', $f[0]->headers);
    ack_msg($c, $f[0]);
    ack_msg($c, $f[1], receipt => 'r-ack');
    wait_receipt($c, 'r-ack');
    close_session($c);
    my $c2 = session($addr, $ver, 'consumer-2');
    subscribe($c2, destination => $dest, id => 'c2');
    expect_none($c2);
    close_session($c2);
} ];

$scenario{receipt} = [ queue => sub {
    my ($addr, $ver, $dest) = @_;
    my $c = session($addr, $ver, 'client');
    subscribe($c, destination => $dest, id => 's1', receipt => 'r-subscribe');
    wait_receipt($c, 'r-subscribe');
    $c->{stomp}->send({ destination => $dest, body => 'r1', receipt => 'r-send' });
    wait_receipt($c, 'r-send');
    expect_bodies($c, 'r1');
    $c->{stomp}->unsubscribe({ id => 's1', receipt => 'r-unsubscribe' });
    wait_receipt($c, 'r-unsubscribe');
    raw($c, 'BEGIN', transaction => 'tx-r', receipt => 'r-begin');
    wait_receipt($c, 'r-begin');
    raw($c, 'COMMIT', transaction => 'tx-r', receipt => 'r-commit');
    wait_receipt($c, 'r-commit');
    raw($c, 'DISCONNECT', receipt => 'r-disconnect');
    wait_receipt($c, 'r-disconnect');
    $c->{stomp}->socket->close;
} ];

$scenario{'ack-client'} = [ queue => sub {
    my ($addr, $ver, $dest) = @_;
    produce($addr, $ver, $dest, [qw(a1 a2 a3)]);
    my $c = session($addr, $ver, 'consumer-1');
    subscribe($c, destination => $dest, id => 'c1', ack => 'client');
    my @f = expect_bodies($c, qw(a1 a2 a3));
    ack_msg($c, $f[1], receipt => 'r-ack');    # cumulative: a1 and a2
    wait_receipt($c, 'r-ack');
    close_session($c);                          # a3 stays unacknowledged
    my $c2 = session($addr, $ver, 'consumer-2');
    subscribe($c2, destination => $dest, id => 'c2', ack => 'client');
    my ($again) = expect_bodies($c2, 'a3');
    obs('redelivered', $again->headers->{redelivered});
    ack_msg($c2, $again, receipt => 'r-ack2');
    wait_receipt($c2, 'r-ack2');
    expect_none($c2);
    close_session($c2);
} ];

$scenario{'nack-redeliver'} = [ queue => sub {
    my ($addr, $ver, $dest) = @_;
    die { unsupported => 'NACK does not exist in STOMP 1.0' } if $ver eq '1.0';
    produce($addr, $ver, $dest, ['n1']);
    my $c = session($addr, $ver, 'consumer');
    subscribe($c, destination => $dest, id => 'c1', ack => 'client-individual');
    my ($first) = expect_bodies($c, 'n1');
    obs('first-redelivered', $first->headers->{redelivered});
    nack_msg($c, $first, receipt => 'r-nack');
    wait_receipt($c, 'r-nack');
    my $again = next_message($c);
    die "NACKed message was not delivered again within ${WAIT}s\n" unless $again;
    obs('second-headers', $again->headers);
    die "redelivered body " . ($again->body // '') . ", want n1\n" if ($again->body // '') ne 'n1';
    my $r = $again->headers->{redelivered} // '';
    die "redelivered header '$r', want 'true'\n" if $r ne 'true';
    ack_msg($c, $again, receipt => 'r-ack');
    wait_receipt($c, 'r-ack');
    close_session($c);
    my $c2 = session($addr, $ver, 'consumer-2');
    subscribe($c2, destination => $dest, id => 'c2');
    expect_none($c2);
    close_session($c2);
} ];

$scenario{transaction} = [ queue => sub {
    my ($addr, $ver, $dest) = @_;
    my $c = session($addr, $ver, 'consumer');
    subscribe($c, destination => $dest, id => 'c1', receipt => 'r-sub');
    wait_receipt($c, 'r-sub');
    my $p = session($addr, $ver, 'producer');
    my $send = sub { $p->{stomp}->send({ destination => $dest, body => $_[0], transaction => $_[1] }) };
    raw($p, 'BEGIN', transaction => 'tx-abort');
    raw($p, 'BEGIN', transaction => 'tx-commit');
    $send->('x1', 'tx-commit');
    $send->('y1', 'tx-abort');
    $send->('x2', 'tx-commit');
    $send->('y2', 'tx-abort');
    # Sync point on a non-transactional frame (RabbitMQ holds back receipts
    # for transactional SENDs until COMMIT).
    raw($p, 'BEGIN', transaction => 'tx-sync', receipt => 'r-sync');
    wait_receipt($p, 'r-sync');
    expect_none($c);                            # nothing visible before COMMIT
    raw($p, 'ABORT', transaction => 'tx-abort');
    raw($p, 'COMMIT', transaction => 'tx-commit', receipt => 'r-commit');
    wait_receipt($p, 'r-commit');
    expect_bodies($c, qw(x1 x2));
    expect_none($c);
    raw($p, 'ABORT', transaction => 'tx-sync');
    close_session($p);
    close_session($c);
} ];

# escape12/unescape12: what a Net::Stomp user must do by hand on 1.2.
sub escape12 { my $v = shift; $v =~ s/\\/\\\\/g; $v =~ s/\r/\\r/g; $v =~ s/\n/\\n/g; $v =~ s/:/\\c/g; $v }
sub unescape12 {
    my $v = shift;
    $v =~ s/\\(.)/$1 eq 'n' ? "\n" : $1 eq 'r' ? "\r" : $1 eq 'c' ? ':' : $1 eq '\\' ? '\\' : die "bad escape \\$1\n"/ge;
    $v;
}

my $TRICKY = "a:b\nc\\d";

$scenario{headers} = [ topic => sub {
    my ($addr, $ver, $dest) = @_;
    my $c = session($addr, $ver, 'consumer');
    subscribe($c, destination => $dest, id => 'c1', receipt => 'r-sub');
    wait_receipt($c, 'r-sub');
    my %send = ('x-interop-plain' => 'plain-value');
    $send{'x-interop-tricky'} = escape12($TRICKY) if $ver eq '1.2';
    produce($addr, $ver, $dest, ['h1'], %send);
    my ($f) = expect_bodies($c, 'h1');
    my $h = $f->headers;
    obs('message-headers', $h);
    my $plain = $h->{'x-interop-plain'} // '';
    die "x-interop-plain: got '$plain'\n" if $plain ne 'plain-value';
    if ($ver eq '1.2') {
        # Net::Stomp hands back the escaped wire form: prove that, then decode.
        my $rawv = $h->{'x-interop-tricky'} // '';
        obs('tricky-as-returned-by-net-stomp', $rawv);
        die "x-interop-tricky on the wire: got '$rawv', want '" . escape12($TRICKY) . "'\n"
            if $rawv ne escape12($TRICKY);
        my $dec = unescape12($rawv);
        die "x-interop-tricky decoded: got '$dec'\n" if $dec ne $TRICKY;
    }
    close_session($c);
} ];

$scenario{v10} = [ queue => sub {
    my ($addr, $ver, $dest) = @_;
    die { unsupported => 'v10 runs only with VERSION 1.0' } if $ver ne '1.0';
    my $c = session($addr, $ver, 'consumer');
    obs('connected-headers', $c->{connected});
    my $v = $c->{connected}{version} // '1.0';
    die "CONNECTED version $v for a 1.0 client\n" if $v ne '1.0';
    subscribe($c, destination => $dest, ack => 'client', receipt => 'r-sub');   # 1.0: no id
    wait_receipt($c, 'r-sub');
    produce($addr, $ver, $dest, ['v1']);
    my ($f) = expect_bodies($c, 'v1');
    obs('message-headers', $f->headers);
    ack_msg($c, $f, receipt => 'r-ack');
    wait_receipt($c, 'r-ack');
    $c->{stomp}->unsubscribe({ destination => $dest, receipt => 'r-unsub' });
    wait_receipt($c, 'r-unsub');
    close_session($c);
} ];

sub main {
    if (@ARGV != 4) { print STDERR "usage: $0 HOST:PORT SCENARIO VERSION SUFFIX\n"; return 2 }
    my ($addr, $name, $ver, $suffix) = @ARGV;
    my $sc = $scenario{$name};
    unless ($sc) { print "UNSUPPORTED $name: unknown scenario\n"; return 2 }
    unless ($ver eq '1.0' || $ver eq '1.2') { print "UNSUPPORTED $name: version $ver\n"; return 2 }
    (my $vtag = $ver) =~ s/\.//;
    my $dest = "/$sc->[0]/interop.perl.$name.v$vtag.$suffix";
    obs('destination', $dest);
    my $ok = eval { $sc->[1]->($addr, $ver, $dest); 1 };
    if (!$ok) {
        my $err = $@;
        if (ref $err eq 'HASH' && $err->{unsupported}) {
            print "UNSUPPORTED $name: $err->{unsupported}\n";
            return 2;
        }
        chomp $err;
        $err =~ s/\n/ /g;
        print "FAIL $name: $err\n";
        return 1;
    }
    print "OK $name\n";
    return 0;
}

$| = 1;
exit main();
