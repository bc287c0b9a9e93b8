package main

import (
	"context"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/stomp-broker/stomp-broker/cluster"
	"github.com/stomp-broker/stomp-broker/ledger"
	"github.com/stomp-broker/stomp-broker/parent"
	"github.com/stomp-broker/stomp-broker/store"
)

// applyStoreFlags opens the --store (if durable) and fills in the job-queue
// settings of cfg. The broker closes the store when it stops. What a
// --store value means is store.ParseSpec's business.
func applyStoreFlags(c *cli.Context, log *slog.Logger, cfg *parent.Config) error {
	cfg.BrokerID = c.String(flagBrokerID)
	cfg.Lease = c.Duration(flagLease)
	cfg.Jobs = ledger.JobDefaults{
		MaxRedeliveries:    c.Int(flagMaxRedeliveries),
		RedeliveryDelay:    c.Duration(flagRedeliveryDelay),
		RedeliveryDelayMax: c.Duration(flagRedeliveryMax),
	}
	spec, err := store.ParseSpec(c.String(flagStore))
	if err != nil {
		return cli.Exit(err.Error(), 2) // it names --store already
	}
	if !spec.Durable() {
		log.Info("queue messages are kept in memory only and do not survive a restart (see --store)")
		return nil
	}
	st, err := spec.Open(context.Background())
	if err != nil {
		return usageError(flagStore, "%v", err)
	}
	cfg.Store = st
	cfg.PersistAll = spec.PersistAll()
	log.Info("durable store open: persistent:true queue messages survive restarts", "store", spec.String())
	if spec.Backend == store.BackendPostgres {
		// Brokers sharing the database are one broker for topics and
		// temporary queues too.
		bus, err := cluster.Open(cluster.Config{DSN: spec.URL, Log: log})
		if err != nil {
			return usageError(flagStore, "%v", err)
		}
		cfg.Cluster = bus
		log.Info("cluster: topics and temporary queues span the brokers sharing this database", "node", bus.Node())
	}
	return nil
}
