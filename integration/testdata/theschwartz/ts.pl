#!/usr/bin/perl
# ts.pl: the Perl side of integration/theschwartz_test.go. It uses
# TheSchwartz 1.12 exactly as an application would (Debian's
# libtheschwartz-perl), against the database the broker serves with
# --store theschwartz:...
#
# Environment:
#   TS_DSN    DBI data source, e.g. dbi:SQLite:dbname=/tmp/x.db or
#             dbi:Pg:dbname=stomp_test;host=/run/pg (for a PostgreSQL schema,
#             set PGOPTIONS='-c search_path=<schema>' as well)
#   TS_USER   database user (may be empty)
#
# Commands (one JSON object per output line):
#   insert FUNCNAME ARG [uniqkey=K] [priority=P] [coalesce=C] [run_after=T] [storable=1]
#       insert one job (storable=1: the arg is the hash {arg => ARG}, which
#       TheSchwartz stores Storable-frozen); prints {"jobid":N} or
#       {"jobid":null} when TheSchwartz refused a duplicate uniqkey
#   insert-many FUNCNAME N PREFIX
#       insert N jobs with args PREFIX-0 .. PREFIX-(N-1); prints one
#       {"jobid":N,"arg":A} per job
#   work FUNCNAME [fail=1] [max_retries=N] [retry_delay=S] [sleep=S] [timeout=S] [max_jobs=N]
#       a TheSchwartz::Worker for FUNCNAME that works jobs until no job row
#       of FUNCNAME is left, max_jobs jobs are done, or timeout (default
#       60s) passes. Prints one {"jobid","arg","arg_hex","arg_ref","uniqkey",
#       "priority","coalesce","run_after","failures","time"} per job, then
#       completes it (or, with fail=1, fails it with "perl says no")
#   status JOBID
#       prints {"pending":0|1,"failures":N,"failure_log":[...],"exit_status":S}
#   count FUNCNAME
#       prints {"count":N}: job rows of FUNCNAME, grabbed or not
use strict;
use warnings;

use JSON::PP ();
use Time::HiRes ();
use TheSchwartz;
use TheSchwartz::Job;
use TheSchwartz::JobHandle;

$| = 1;
my $json = JSON::PP->new->canonical->allow_nonref;

sub out { print $json->encode(shift), "\n" }

sub client {
	my $dsn = $ENV{TS_DSN} or die "ts.pl: TS_DSN is not set\n";
	return TheSchwartz->new(
		databases => [ { dsn => $dsn, user => $ENV{TS_USER} // '', pass => '' } ],
		driver_cache_expiration => 300,
	);
}

# options turns key=value arguments into a hash.
sub options {
	my %o;
	for (@_) {
		my ($k, $v) = split /=/, $_, 2;
		die "ts.pl: bad option '$_'\n" unless defined $v;
		$o{$k} = $v;
	}
	return \%o;
}

# handle builds a job handle for a jobid in the client's only database.
sub handle {
	my ($client, $jobid) = @_;
	my ($hash) = keys %{ $client->{databases} };
	return TheSchwartz::JobHandle->new({ dsn_hashed => $hash, jobid => $jobid, client => $client });
}

# The worker class every FUNCNAME is made a subclass of.
package TestWorker;
use base qw(TheSchwartz::Worker);

our ($FAIL, $MAX_RETRIES, $RETRY_DELAY, $SLEEP) = (0, 0, 0, 0);

sub max_retries { $MAX_RETRIES }
sub retry_delay { $RETRY_DELAY }

sub work {
	my ($class, $job) = @_;
	my $arg = $job->arg;
	main::out({
		jobid     => $job->jobid + 0,
		arg       => ref($arg) ? $arg->{arg} : $arg,
		arg_hex   => ref($arg) ? '' : unpack('H*', $arg // ''),
		arg_ref   => ref($arg) || '',
		uniqkey   => $job->uniqkey,
		priority  => defined $job->priority ? $job->priority + 0 : undef,
		coalesce  => $job->coalesce,
		run_after => $job->run_after + 0,
		failures  => $job->failures + 0,
		time      => Time::HiRes::time(),
	});
	Time::HiRes::sleep($SLEEP) if $SLEEP;
	if ($FAIL) {
		$job->failed('perl says no');
	} else {
		$job->completed;
	}
}

package main;

my $cmd = shift @ARGV or die "usage: ts.pl insert|insert-many|work|status|count ...\n";
my $client = client();

if ($cmd eq 'insert') {
	my ($funcname, $arg, @rest) = @ARGV;
	my $o = options(@rest);
	my $job = TheSchwartz::Job->new(
		funcname => $funcname,
		arg      => $o->{storable} ? { arg => $arg } : $arg,
		(map { exists $o->{$_} ? ($_ => $o->{$_}) : () } qw(uniqkey priority coalesce run_after)),
	);
	my $h = $client->insert($job);
	out({ jobid => $h ? $h->jobid + 0 : undef });
}
elsif ($cmd eq 'insert-many') {
	my ($funcname, $n, $prefix) = @ARGV;
	for my $i (0 .. $n - 1) {
		my $h = $client->insert($funcname, "$prefix-$i") or die "ts.pl: insert $prefix-$i failed\n";
		out({ jobid => $h->jobid + 0, arg => "$prefix-$i" });
	}
}
elsif ($cmd eq 'work') {
	my ($funcname, @rest) = @ARGV;
	my $o = options(@rest);
	$TestWorker::FAIL        = $o->{fail} // 0;
	$TestWorker::MAX_RETRIES = $o->{max_retries} // 0;
	$TestWorker::RETRY_DELAY = $o->{retry_delay} // 0;
	$TestWorker::SLEEP       = $o->{sleep} // 0;
	{
		no strict 'refs';
		@{"${funcname}::ISA"} = ('TestWorker');
	}
	$client->can_do($funcname);
	my $deadline = time + ($o->{timeout} // 60);
	my $left = $o->{max_jobs} // -1;
	while (time < $deadline && $left != 0) {
		if ($client->work_once) {
			$left--;
			next;
		}
		last unless $client->list_jobs({ funcname => $funcname, limit => 1 });
		Time::HiRes::sleep(0.05);
	}
}
elsif ($cmd eq 'status') {
	my ($jobid) = @ARGV;
	my $h = handle($client, $jobid);
	my @log = $h->failure_log;
	out({
		pending     => $h->is_pending ? 1 : 0,
		failures    => scalar(@log),
		failure_log => \@log,
		exit_status => defined $h->exit_status ? $h->exit_status + 0 : undef,
	});
}
elsif ($cmd eq 'count') {
	my ($funcname) = @ARGV;
	my @jobs = $client->list_jobs({ funcname => $funcname, limit => 1_000_000 });
	out({ count => scalar(@jobs) });
}
else {
	die "ts.pl: unknown command '$cmd'\n";
}
