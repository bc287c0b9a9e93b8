package store

import (
	"container/heap"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// NewMemory returns a Store that keeps messages in RAM: nothing survives the
// process. It is the default store and the reference the durable stores are
// tested against. maxBytes bounds the Headers+Body bytes of stored messages
// (0 or less = no bound); a Put that would exceed it fails with a wrapped
// ErrFull and stores nothing. Every method returns without blocking on I/O;
// Put commits instantly, so there is no group commit.
func NewMemory(maxBytes int64) Store {
	return &memoryStore{
		maxBytes: maxBytes,
		byID:     make(map[int64]*memEntry),
		queues:   make(map[string]*memQueue),
		uniq:     make(map[memUniq]*memEntry),
	}
}

// memoryStore is one mutex over plain maps and heaps. Each queue keeps its
// messages in exactly one of three heaps, by state, so Lease never scans
// messages it cannot hand out:
//
//	ready   visible and not leased, ordered by Priority desc then ID
//	delayed NotBefore in the future, ordered by NotBefore
//	leased  under a lease, ordered by lease end
//
// Lease first moves due delayed messages and expired leases to ready.
type memoryStore struct {
	mu        sync.Mutex
	closed    bool
	maxBytes  int64
	usedBytes int64
	lastID    int64
	byID      map[int64]*memEntry
	queues    map[string]*memQueue
	uniq      map[memUniq]*memEntry
}

// memUniq is the key of the (queue, uniqkey) uniqueness rule.
type memUniq struct{ queue, key string }

// memEntry is one stored message and its lease.
type memEntry struct {
	msg        Message
	owner      string // "" = not leased
	leaseUntil time.Time
	home       *entryHeap // the heap of its queue that holds it
	index      int        // position in home, maintained by entryHeap.Swap
}

func (e *memEntry) size() int64 { return int64(len(e.msg.Headers) + len(e.msg.Body)) }

// memQueue is one destination's three heaps.
type memQueue struct {
	ready, delayed, leased entryHeap
	deadLettered           int
}

func newMemQueue() *memQueue {
	q := &memQueue{}
	q.ready.less = func(a, b *memEntry) bool {
		if a.msg.Priority != b.msg.Priority {
			return a.msg.Priority > b.msg.Priority
		}
		return a.msg.ID < b.msg.ID
	}
	q.delayed.less = func(a, b *memEntry) bool { return a.msg.NotBefore.Before(b.msg.NotBefore) }
	q.leased.less = func(a, b *memEntry) bool { return a.leaseUntil.Before(b.leaseUntil) }
	return q
}

func (q *memQueue) len() int { return q.ready.Len() + q.delayed.Len() + q.leased.Len() }

// place pushes e into the heap its state calls for.
func (q *memQueue) place(e *memEntry, now time.Time) {
	switch {
	case e.owner != "":
		q.leased.push(e)
	case e.msg.NotBefore.After(now):
		q.delayed.push(e)
	default:
		q.ready.push(e)
	}
}

// promote moves due delayed messages and expired leases to ready.
func (q *memQueue) promote(now time.Time) {
	for q.delayed.Len() > 0 && !q.delayed.items[0].msg.NotBefore.After(now) {
		q.ready.push(q.delayed.pop())
	}
	for q.leased.Len() > 0 && !q.leased.items[0].leaseUntil.After(now) {
		e := q.leased.pop()
		e.owner, e.leaseUntil = "", time.Time{}
		q.ready.push(e)
	}
}

// entryHeap is a container/heap of entries that records each entry's
// position, so any entry can be removed in O(log n).
type entryHeap struct {
	items []*memEntry
	less  func(a, b *memEntry) bool
}

func (h *entryHeap) Len() int           { return len(h.items) }
func (h *entryHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *entryHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index, h.items[j].index = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*memEntry)
	e.home, e.index = h, len(h.items)
	h.items = append(h.items, e)
}
func (h *entryHeap) Pop() any {
	n := len(h.items) - 1
	e := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	e.home, e.index = nil, -1
	return e
}
func (h *entryHeap) push(e *memEntry) { heap.Push(h, e) }
func (h *entryHeap) pop() *memEntry   { return heap.Pop(h).(*memEntry) }

// unlink removes e from whichever heap holds it.
func unlink(e *memEntry) {
	if e.home != nil {
		heap.Remove(e.home, e.index)
	}
}

func (s *memoryStore) queue(name string) *memQueue {
	q := s.queues[name]
	if q == nil {
		q = newMemQueue()
		s.queues[name] = q
	}
	return q
}

// Put implements Store.Put. The messages are stored at once; ctx is only
// checked on entry.
func (s *memoryStore) Put(ctx context.Context, msgs []*Message) ([]PutResult, error) {
	if err := validate(msgs); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if err := s.checkBudget(msgs); err != nil {
		return nil, err
	}
	now := time.Now()
	results := make([]PutResult, len(msgs))
	for i, m := range msgs {
		if m.UniqKey != "" {
			if old := s.uniq[memUniq{m.Queue, m.UniqKey}]; old != nil {
				m.ID = old.msg.ID
				results[i] = PutResult{ID: old.msg.ID, Coalesced: true}
				continue
			}
		}
		s.lastID++
		m.ID = s.lastID
		e := &memEntry{msg: *m, index: -1}
		if e.msg.NotBefore.IsZero() {
			e.msg.NotBefore = now
		}
		s.byID[e.msg.ID] = e
		if m.UniqKey != "" {
			s.uniq[memUniq{m.Queue, m.UniqKey}] = e
		}
		s.usedBytes += e.size()
		q := s.queue(m.Queue)
		if e.msg.OrigQueue != "" {
			q.deadLettered++
		}
		q.place(e, now)
		results[i] = PutResult{ID: e.msg.ID}
	}
	return results, nil
}

// checkBudget fails with ErrFull if storing msgs would exceed maxBytes.
// Messages that will coalesce (with a stored message or an earlier one in
// msgs) take no room.
func (s *memoryStore) checkBudget(msgs []*Message) error {
	if s.maxBytes <= 0 {
		return nil
	}
	var need int64
	seen := make(map[memUniq]bool)
	for _, m := range msgs {
		if m.UniqKey != "" {
			k := memUniq{m.Queue, m.UniqKey}
			if s.uniq[k] != nil || seen[k] {
				continue
			}
			seen[k] = true
		}
		need += int64(len(m.Headers) + len(m.Body))
	}
	if s.usedBytes+need > s.maxBytes {
		return fmt.Errorf("store: memory: %d bytes stored + %d new > budget %d: %w",
			s.usedBytes, need, s.maxBytes, ErrFull)
	}
	return nil
}

// Lease implements Store.Lease.
func (s *memoryStore) Lease(ctx context.Context, queue, owner string, n int, lease time.Duration) ([]*Message, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	q := s.queues[queue]
	if q == nil || n <= 0 {
		return nil, nil
	}
	now := time.Now()
	q.promote(now)
	var out []*Message
	for len(out) < n && q.ready.Len() > 0 {
		e := q.ready.pop()
		e.owner, e.leaseUntil = owner, now.Add(lease)
		e.msg.Deliveries++
		q.leased.push(e)
		m := e.msg
		out = append(out, &m)
	}
	return out, nil
}

// Renew implements Store.Renew.
func (s *memoryStore) Renew(ctx context.Context, owner string, ids []int64, lease time.Duration) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := time.Now()
	var lost []int64
	for _, id := range ids {
		e := s.byID[id]
		if e == nil || e.owner != owner {
			lost = append(lost, id)
			continue
		}
		unlink(e)
		e.leaseUntil = now.Add(lease)
		s.queues[e.msg.Queue].leased.push(e)
	}
	return leaseLost(lost)
}

// leaseLost returns nil for no ids, else a *LeaseLostError with ids sorted.
func leaseLost(ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return &LeaseLostError{IDs: ids}
}

// Ack implements Store.Ack.
func (s *memoryStore) Ack(ctx context.Context, ids []int64) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	for _, id := range ids {
		if e := s.byID[id]; e != nil {
			s.remove(e)
		}
	}
	return nil
}

// remove forgets e entirely: heap, maps, byte budget, empty queue.
func (s *memoryStore) remove(e *memEntry) {
	unlink(e)
	delete(s.byID, e.msg.ID)
	s.detach(e)
	s.usedBytes -= e.size()
}

// detach drops e's queue bookkeeping (uniqueness, dead-letter count, an
// emptied queue). e must already be unlinked from its heap.
func (s *memoryStore) detach(e *memEntry) {
	if e.msg.UniqKey != "" {
		delete(s.uniq, memUniq{e.msg.Queue, e.msg.UniqKey})
	}
	q := s.queues[e.msg.Queue]
	if e.msg.OrigQueue != "" {
		q.deadLettered--
	}
	if q.len() == 0 {
		delete(s.queues, e.msg.Queue)
	}
}

// Release implements Store.Release.
func (s *memoryStore) Release(ctx context.Context, ids []int64, notDelivered bool, notBefore time.Time, lastError string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := time.Now()
	if notBefore.IsZero() {
		notBefore = now
	}
	for _, id := range ids {
		e := s.byID[id]
		if e == nil {
			continue
		}
		unlink(e)
		e.owner, e.leaseUntil = "", time.Time{}
		if notDelivered && e.msg.Deliveries > 0 {
			e.msg.Deliveries--
		}
		e.msg.NotBefore = notBefore
		e.msg.LastError = lastError
		s.queues[e.msg.Queue].place(e, now)
	}
	return nil
}

// DeadLetter implements Store.DeadLetter.
func (s *memoryStore) DeadLetter(ctx context.Context, id int64, dlq string) error {
	if dlq == "" {
		return fmt.Errorf("store: memory: dead-letter %d: empty queue name: %w", id, ErrBadMessage)
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	e := s.byID[id]
	if e == nil {
		return fmt.Errorf("store: memory: dead-letter %d: %w", id, ErrNotFound)
	}
	unlink(e)
	s.detach(e)
	now := time.Now()
	e.msg.OrigQueue, e.msg.OrigDeliveries = e.msg.Queue, e.msg.Deliveries
	e.msg.Queue, e.msg.Deliveries, e.msg.UniqKey = dlq, 0, ""
	e.msg.NotBefore = now
	e.owner, e.leaseUntil = "", time.Time{}
	q := s.queue(dlq)
	q.deadLettered++
	q.place(e, now)
	return nil
}

// ReleaseOwner implements Store.ReleaseOwner.
func (s *memoryStore) ReleaseOwner(ctx context.Context, owner string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := time.Now()
	for _, q := range s.queues {
		var mine []*memEntry
		for _, e := range q.leased.items {
			if e.owner == owner {
				mine = append(mine, e)
			}
		}
		for _, e := range mine {
			unlink(e)
			e.owner, e.leaseUntil = "", time.Time{}
			q.place(e, now)
		}
	}
	return nil
}

// Stats implements Store.Stats.
func (s *memoryStore) Stats(ctx context.Context) ([]QueueStats, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := time.Now()
	out := make([]QueueStats, 0, len(s.queues))
	for name, q := range s.queues {
		leased := 0
		for _, e := range q.leased.items {
			if e.leaseUntil.After(now) {
				leased++
			}
		}
		out = append(out, QueueStats{Queue: name, Stored: q.len(), Leased: leased, DeadLettered: q.deadLettered})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Queue < out[j].Queue })
	return out, nil
}

// Close implements Store.Close: it drops every message.
func (s *memoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.byID, s.queues, s.uniq = nil, nil, nil
	return nil
}

// lock takes the store's mutex for a method, after checking ctx; it
// returns with the mutex held (the caller defers the unlock) or with an
// error and the mutex free (ctx ended, or ErrClosed).
func (s *memoryStore) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}
