package main

import (
	"context"
	"testing"
	"time"
)

// TestSpawnProducersClosesDoneAfterTheLast: a producer that returns at
// once must not close producersDone (and start the idle clock) while
// another is still running; before spawnProducers counted them all up
// front, the first one to finish brought the count to zero and the next
// one closed the channel a second time (a panic seen in CI).
func TestSpawnProducersClosesDoneAfterTheLast(t *testing.T) {
	tr := newTrial(context.Background(), time.Minute)
	defer tr.close()
	release := make(chan struct{})
	tr.spawnProducers(
		func() error { return nil },
		func() error { <-release; return nil },
	)
	select {
	case <-tr.producersDone:
		t.Fatal("producersDone closed while a producer was still running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case <-tr.producersDone:
	case <-time.After(10 * time.Second):
		t.Fatal("producersDone not closed after every producer returned")
	}
	if tr.producersDoneAt.Load() == 0 {
		t.Error("producersDoneAt not set")
	}
}
