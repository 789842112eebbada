package scheduler

import (
	"log/slog"
	"time"
)

// freed is what an instance tells the owner when it is idle again: how
// many rows its batch answered, when the owner sent the batch, and when
// the engine finished (before the answers went out, so every row queued
// since can be a return); rows 0: not known, as for a pipelined instance,
// whose token comes back before its batch ends.
type freed struct {
	rows int
	sent time.Time
	end  time.Time
	cold bool // the engine compiled, timed or captured for it (engine.ColdCounter)
}

// filler is the continuous policy's one exception to "an idle instance
// takes whatever is queued at once": it lets an idle instance wait for the
// clients whose answers it has just sent, when that has been measured to
// answer more rows per second than never waiting.
//
// Closed-loop clients (a fixed number of callers, each sending its next
// request when the last is answered, as every benchmark and most pipelines
// do) settle into one of two cycles. Split: the N clients form two groups,
// each returning while the other's batch runs, so the GPU never idles but
// runs N/2 rows at a time. Lock-step: one batch of all N, then the GPU
// idles while the N answers go out and the N next requests come in. A
// policy that never waits stays split for good. Which cycle serves more
// depends on how much a batch's time grows with its rows and on the
// clients' round trip: on an H200 lock-step won at c=32 (latency-bound
// batches of m3e-base, a short round trip) and lost at c=128 (docs/gpu.md,
// sixth and seventh rounds). An earlier version predicted the winner from a
// cost model (batch time per size, idle time per cycle); its inputs sat at
// the break-even at c=32 and its choice flipped. This one measures what is
// to be decided, rows answered per second under each cycle, in short
// windows (picker), and keeps the better one for a while before measuring
// again.
//
// Under lock-step an idle instance holding q rows waits for the m rows
// still out (the latest batches' rows whose clients have not sent again),
// but never longer after it was freed than the latest batch took: the idle
// time lock-step pays for must be below 2·cost(N/2) − cost(N), which is
// below cost(N), so a longer wait never pays. A lone client is never
// delayed (its own return ends the wait: m = 0). With several instances
// lock-step runs one batch at a time: an idle instance also waits for the
// others' batches to end and their clients to return.
//
// Where batches take longBatch or more (ONNX Runtime on a CPU, a GPU's
// batches of long texts) the instance is bound by its rows: a fixed cost
// per batch of a few hundred microseconds, all that lock-step saves, is a
// few percent of it at most, less than measuring it costs (an
// exploration's windows of eight batches then take seconds, half of them
// waiting). The instance then never waits.
//
// The owner goroutine alone uses a filler.
type filler struct {
	on bool
	// The latest batches whose rows are not all back, oldest first, and
	// when the owner heard of the latest's end (the idle time's start).
	sent  []answered
	idle  time.Time
	cost  time.Duration // the latest warm batch's time, the owner's send to its free
	usual time.Duration // the warm batches' time, smoothed: one slow batch is not a slow instance
	tick  uint64        // batches completed
	waits int           // decisions to wait, for tests
	pick  picker
	log   *slog.Logger
}

// completed records a batch's end; pending is what the owner holds, which
// may already include returns from it.
func (f *filler) completed(now time.Time, fr freed, pending []row) {
	if !f.on || fr.rows <= 0 {
		return
	}
	f.tick++
	if !fr.cold {
		// All the instance spends on a batch, from the owner's send to the
		// owner hearing it is free: staging, the engine, the answers and the
		// hand-offs.
		f.cost = now.Sub(fr.sent)
		if f.usual == 0 {
			f.usual = f.cost
		} else {
			f.usual += (f.cost - f.usual) / 8
		}
	}
	if f.usual > longBatch {
		f.pick.halt()
	} else if f.pick.batch(now, fr.rows, fr.cold) && f.log != nil {
		// About once a second under load: what serve -v shows of the choice.
		f.log.Debug("continuous batching: cycles measured", "lock_step", f.pick.best,
			"lock_step_rows_per_s", int(f.pick.rate(true)), "split_rows_per_s", int(f.pick.rate(false)))
	}
	if len(f.sent) == cap(f.sent) && len(f.sent) > 0 {
		f.sent = append(f.sent[:0], f.sent[1:]...) // the oldest's clients are gone
	}
	if f.sent == nil {
		f.sent = make([]answered, 0, 4)
	}
	f.sent = append(f.sent, answered{rows: fr.rows, end: fr.end})
	f.idle = now
	f.arrived(now, pending)
}

// longBatch is the batch time from which the filler stays split.
const longBatch = 10 * time.Millisecond

// answered is a batch whose rows went back to their clients: how many, when
// the engine ended it, and how many rows have been queued since that can
// be its clients' next requests.
type answered struct {
	rows, back int
	end        time.Time
}

// arrived records rows taken from the inbox, and when a batch ends the
// rows held: a row queued after a batch's end is taken as the return of
// one of its rows, the oldest batch's first, so that under split cycles the
// group still on its way back from the batch before the latest is counted
// too. A row so taken is marked, so that it is counted once; one that
// matched no batch (queued after an end the owner had not heard of yet) is
// taken when that batch's end is recorded.
func (f *filler) arrived(now time.Time, rows []row) {
	if !f.on || len(f.sent) == 0 {
		return
	}
	for j := range rows {
		r := &rows[j]
		if r.back {
			continue
		}
		for i := range f.sent {
			a := &f.sent[i]
			if a.back < a.rows && !r.req.enqueued.Before(a.end) {
				a.back++
				r.back = true
				break
			}
		}
	}
	kept := f.sent[:0]
	for _, a := range f.sent {
		if a.back < a.rows {
			kept = append(kept, a)
		}
	}
	f.sent = kept
}

// out is the rows answered whose senders have not sent again: the closed
// loop's clients that are on their way back.
func (f *filler) out() int {
	n := 0
	for _, a := range f.sent {
		n += a.rows - a.back
	}
	return n
}

// wait says how long past now an idle instance holding q queued rows
// (room: the most one batch takes) should wait for returning rows, while
// busy other instances run; 0 means run now. Under lock-step with more
// than one instance, the clients whose batch another instance still runs
// are waited for too (up to twice the latest batch's time since the
// instance was freed): a batch cut beside theirs would split the clients
// into groups again, one per instance.
func (f *filler) wait(now time.Time, q, room, busy int) time.Duration {
	if !f.on || !f.pick.lock || q <= 0 || q >= room || f.cost <= 0 {
		return 0
	}
	since := now.Sub(f.idle)
	if busy > 0 {
		if since >= 2*f.cost {
			return 0
		}
		f.waits++
		return 2*f.cost - since
	}
	if min(f.out(), room-q) <= 0 {
		return 0
	}
	if since >= f.cost {
		f.sent = f.sent[:0] // nobody came back in time: those clients are gone
		return 0
	}
	f.waits++
	return f.cost - since
}
