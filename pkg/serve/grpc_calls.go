package serve

import (
	"context"
	"math/rand/v2"
	"sync"
)

// The drain deadline cancels every gRPC call in flight (grpcTracked). That
// used to be a context.AfterFunc on the drain's base context per call:
// three allocations, and a registration and a removal in the base
// context's one set of children under its one lock, which every call on
// every core took twice. The calls are kept in a sharded set instead: a
// call takes one shard's lock (chosen at random, so that cores rarely
// meet) to come in and once to go, and the deadline walks the shards.

// callShards is the number of shards: far more than the cores that take
// them, so that two calls rarely share a lock.
const callShards = 64

// grpcCalls is the set of gRPC calls in flight, by shard.
type grpcCalls struct {
	shards [callShards]callShard
}

type callShard struct {
	mu    sync.Mutex
	next  uint64
	calls map[uint64]context.CancelCauseFunc
	_     [40]byte // a shard per cache line
}

// add registers cancel and returns what remove needs.
func (g *grpcCalls) add(cancel context.CancelCauseFunc) (shard int, id uint64) {
	shard = int(rand.Uint64() % callShards)
	sh := &g.shards[shard]
	sh.mu.Lock()
	if sh.calls == nil {
		sh.calls = make(map[uint64]context.CancelCauseFunc)
	}
	sh.next++
	id = sh.next
	sh.calls[id] = cancel
	sh.mu.Unlock()
	return shard, id
}

func (g *grpcCalls) remove(shard int, id uint64) {
	sh := &g.shards[shard]
	sh.mu.Lock()
	delete(sh.calls, id)
	sh.mu.Unlock()
}

// cancelAll cancels every call in the set with cause.
func (g *grpcCalls) cancelAll(cause error) {
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		for _, cancel := range sh.calls {
			cancel(cause)
		}
		sh.mu.Unlock()
	}
}
