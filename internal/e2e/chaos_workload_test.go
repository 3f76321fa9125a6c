package e2e

// The chaos suite's workload: clients that create, update, scale, delete
// and read instances through random servers, one request per operation,
// each recorded with its call and return time and what it answered.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/api"
)

// chaosTenant is the tenant of every instance of the chaos suite.
const chaosTenant = "chaos"

// opTimeout bounds one operation: what has no answer by then is of
// unknown outcome.
const opTimeout = 2 * time.Second

// keyOps is how many operations an instance name gets before the
// workload moves on to a new one: short histories keep the check fast
// with operations of unknown outcome in them.
const keyOps = 80

// workload runs clients against a cluster and records their operations.
type workload struct {
	c     *Cluster
	start time.Time
	// docOf makes the instance document of a key with a replica count and
	// a marker.
	docOf func(key string, replicas int, mark string) map[string]any

	mu    sync.Mutex
	ops   []chaosOp
	slots []keySlot
	marks int
}

// keySlot is one instance the clients share, renamed after keyOps
// operations.
type keySlot struct {
	id, gen, ops int
}

func (s keySlot) key() string { return fmt.Sprintf("w%d-g%d", s.id, s.gen) }

func newWorkload(c *Cluster, slots int, docOf func(string, int, string) map[string]any) *workload {
	w := &workload{c: c, start: time.Now(), docOf: docOf}
	for i := range slots {
		w.slots = append(w.slots, keySlot{id: i})
	}
	return w
}

// run starts clients, each with its own seed drawn from rnd, and returns
// a function that stops them and waits until they have ended.
func (w *workload) run(clients int, rnd *rand.Rand) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range clients {
		seed := rnd.Uint64()
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, i, rand.New(rand.NewPCG(seed, uint64(i))))
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// client makes operations until ctx ends, with a short pause between them.
func (w *workload) client(ctx context.Context, id int, rnd *rand.Rand) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(20+rnd.IntN(80)) * time.Millisecond):
		}
		key, retired := w.pickKey(rnd)
		if retired != "" {
			// The old name's last operation: its replicas go.
			w.do(id, rnd, chaosOp{Key: retired, Kind: opDelete})
		}
		op := chaosOp{Key: key}
		switch n := rnd.IntN(100); {
		case n < 15:
			op.Kind, op.Replicas, op.Mark = opCreate, rnd.IntN(3), w.mark(id)
		case n < 40:
			op.Kind, op.Mark = opUpdate, w.mark(id)
		case n < 60:
			op.Kind, op.Replicas = opScale, rnd.IntN(3)
		case n < 65:
			op.Kind = opDelete
		default:
			op.Kind = opRead
		}
		w.do(id, rnd, op)
	}
}

// pickKey picks a slot and returns its key; when the slot has had its
// operations, it moves the slot to a new name and also returns the old.
func (w *workload) pickKey(rnd *rand.Rand) (key, retired string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := &w.slots[rnd.IntN(len(w.slots))]
	s.ops++
	if s.ops > keyOps {
		retired = s.key()
		s.gen++
		s.ops = 1
	}
	return s.key(), retired
}

// mark returns a marker no other operation uses.
func (w *workload) mark(client int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.marks++
	return fmt.Sprintf("c%d-%d", client, w.marks)
}

// do makes op through a random server and records it.
func (w *workload) do(client int, rnd *rand.Rand, op chaosOp) {
	servers := w.c.Servers()
	s := servers[rnd.IntN(len(servers))]
	op.Client, op.Server = client, s.Name()
	path := instancePath(chaosTenant, op.Key)
	method := http.MethodGet
	var body any
	switch op.Kind {
	case opCreate:
		method, path, body = http.MethodPost, "/v1/tenants/"+chaosTenant+"/instances", w.docOf(op.Key, op.Replicas, op.Mark)
	case opUpdate:
		// A new spec without replicas: the count stays what it is.
		doc := w.docOf(op.Key, 0, op.Mark)
		delete(doc, "replicas")
		method, body = http.MethodPut, doc
	case opScale:
		method, path, body = http.MethodPost, path+"/scale", map[string]int{"replicas": op.Replicas}
	case opDelete:
		method = http.MethodDelete
	}
	op.Call = time.Since(w.start)
	r, err := s.Client().WithTimeout(opTimeout).Try(method, path, body)
	op.Return = time.Since(w.start)
	op.Outcome = outcomeOf(r, err)
	if err != nil {
		op.Error = err.Error()
	} else {
		op.Status = r.Status
		if !r.OK() {
			op.Error = shorten([]byte(r.ErrorCode() + ": " + errorMessage(r)))
		}
	}
	if op.Kind == opRead && op.Outcome == outcomeOK {
		var in apiInstance
		if err := r.Decode(&in); err != nil {
			op.Outcome, op.Error = outcomeFailed, err.Error()
		} else {
			st := stateOf(in)
			op.Seen = &st
		}
	}
	w.mu.Lock()
	w.ops = append(w.ops, op)
	w.mu.Unlock()
}

// history returns the operations recorded so far.
func (w *workload) history() []chaosOp {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]chaosOp(nil), w.ops...)
}

// record adds operations made outside the clients (the final reads).
func (w *workload) record(ops ...chaosOp) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ops = append(w.ops, ops...)
}

// stateOf is what the model keeps of an instance document.
func stateOf(in apiInstance) instState {
	return instState{Exists: true, Replicas: in.Replicas, Mark: in.Spec.Env["CHAOS_MARK"]}
}

// errorMessage is error.message of an error answer.
func errorMessage(r *Response) string {
	var e apiError
	_ = r.Decode(&e)
	return e.Error.Message
}

// outcomeOf classifies an answer: ok, failed (it did not happen), or
// unknown (it may have, now or later).
func outcomeOf(r *Response, err error) string {
	switch {
	case err != nil:
		// A refused connection sent nothing; anything else may have.
		if errors.Is(err, syscall.ECONNREFUSED) {
			return outcomeFailed
		}
		return outcomeUnknown
	case r.OK():
		return outcomeOK
	case r.Status == http.StatusServiceUnavailable:
		// The server says whether the change may have been applied
		// (server/api: X-Drover-Outcome); a read changes nothing either way.
		if r.Header.Get(api.HeaderOutcome) == protocol.OutcomeNotApplied {
			return outcomeFailed
		}
		return outcomeUnknown
	case r.Status >= 400 && r.Status < 500:
		return outcomeFailed
	}
	return outcomeUnknown
}
