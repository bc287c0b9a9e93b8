package main

import (
	"context"
	"log/slog"
	"net/url"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/stomp-broker/stomp-broker/parent"
	"github.com/stomp-broker/stomp-broker/store"
)

// applyStoreFlags opens the --store (if durable) and fills in the job-queue
// settings of cfg. The broker closes the store when it stops.
func applyStoreFlags(c *cli.Context, log *slog.Logger, cfg *parent.Config) error {
	cfg.BrokerID = c.String(flagBrokerID)
	cfg.Lease = c.Duration(flagLease)
	cfg.Jobs = parent.JobDefaults{
		MaxRedeliveries:    c.Int(flagMaxRedeliveries),
		RedeliveryDelay:    c.Duration(flagRedeliveryDelay),
		RedeliveryDelayMax: c.Duration(flagRedeliveryMax),
	}
	spec := c.String(flagStore)
	if spec == "memory" {
		log.Info("queue messages are kept in memory only and do not survive a restart (see --store)")
		return nil
	}
	st, err := store.Open(context.Background(), spec)
	if err != nil {
		return usageError(flagStore, "%v", err)
	}
	cfg.Store = st
	// TheSchwartz has no notion of a non-persistent job: every SEND to a
	// queue becomes a job row that Perl workers can see.
	cfg.PersistAll = strings.HasPrefix(spec, "theschwartz:")
	log.Info("durable store open: persistent:true queue messages survive restarts", "store", redactDSN(spec))
	return nil
}

// redactDSN hides a password in a postgres:// URL before it is logged.
func redactDSN(spec string) string {
	scheme, rest := "", spec
	if strings.HasPrefix(spec, "theschwartz:") {
		scheme, rest = "theschwartz:", strings.TrimPrefix(spec, "theschwartz:")
	}
	if u, err := url.Parse(rest); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxx")
			return scheme + u.String()
		}
	}
	return spec
}
