// Package metrics exports the serving statistics as Prometheus metrics under
// Triton's names (nv_inference_*), so that dashboards and alerts written for
// Triton read m3ectl serve unchanged, plus a few m3ectl_* histograms Triton
// lacks (batch size, request latency, queue depth).
//
// Durations follow Triton: the nv_*_duration_us counters are cumulative
// microseconds. All series carry the labels model and version.
package metrics

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the metric families of one server. Create it once per
// registry with New; Model hands out the per-model view the scheduler records
// into.
type Metrics struct {
	success, failure, count, execCount       *prometheus.CounterVec
	requestUS, queueUS                       *prometheus.CounterVec
	computeInputUS, computeInferUS, outputUS *prometheus.CounterVec
	pending                                  *prometheus.GaugeVec
	batchSize, requestSeconds, queueDepth    *prometheus.HistogramVec
}

var labels = []string{"model", "version"}

// New creates the metric families and registers them on reg. A nil reg makes
// metrics that are recorded but exported nowhere (tests, embedding). When reg
// already holds families of the same names (a second Manager on one
// registry), those are reused so both record into the same series.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		success: counter("nv_inference_request_success", "Number of successful inference requests, all batch sizes"),
		failure: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nv_inference_request_failure",
			Help: "Number of failed inference requests, all batch sizes",
		}, append(append([]string(nil), labels...), "reason")),
		count:          counter("nv_inference_count", "Number of inferences performed (each text of a request counts once)"),
		execCount:      counter("nv_inference_exec_count", "Number of model executions performed (a dynamic batch counts once)"),
		requestUS:      counter("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds (includes queue)"),
		queueUS:        counter("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds"),
		computeInputUS: counter("nv_inference_compute_input_duration_us", "Cumulative compute input duration in microseconds"),
		computeInferUS: counter("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds"),
		outputUS:       counter("nv_inference_compute_output_duration_us", "Cumulative inference compute output duration in microseconds"),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nv_inference_pending_request_count",
			Help: "Instantaneous number of pending requests awaiting execution per-model",
		}, labels),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "m3ectl_batch_size",
			Help:    "Rows per model execution, as formed by the dynamic batcher",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}, labels),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "m3ectl_request_duration_seconds",
			Help:    "Inference request latency from arrival to answer, successful and failed",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms … 16 s
		}, labels),
		queueDepth: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "m3ectl_queue_depth",
			Help:    "Rows waiting in the model's queue, sampled when a request arrives",
			Buckets: []float64{0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096},
		}, labels),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	for _, c := range []**prometheus.CounterVec{
		&m.success, &m.failure, &m.count, &m.execCount,
		&m.requestUS, &m.queueUS, &m.computeInputUS, &m.computeInferUS, &m.outputUS,
	} {
		if *c, err = register(reg, *c); err != nil {
			return nil, err
		}
	}
	if m.pending, err = register(reg, m.pending); err != nil {
		return nil, err
	}
	for _, h := range []**prometheus.HistogramVec{&m.batchSize, &m.requestSeconds, &m.queueDepth} {
		if *h, err = register(reg, *h); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same descriptor so that recording goes to the exported series.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register metrics: %w", err)
}

func counter(name, help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// Model returns the recorder of one model version. A nil *Metrics returns a
// nil *Model, whose methods do nothing, so callers never check.
func (m *Metrics) Model(name, version string) *Model {
	if m == nil {
		return nil
	}
	l := prometheus.Labels{"model": name, "version": version}
	md := &Model{
		parent:         m,
		labels:         l,
		success:        m.success.With(l),
		failure:        m.failure.MustCurryWith(l),
		count:          m.count.With(l),
		execCount:      m.execCount.With(l),
		requestUS:      m.requestUS.With(l),
		queueUS:        m.queueUS.With(l),
		computeInputUS: m.computeInputUS.With(l),
		computeInferUS: m.computeInferUS.With(l),
		outputUS:       m.outputUS.With(l),
		pending:        m.pending.With(l),
		batchSize:      m.batchSize.With(l),
		requestSeconds: m.requestSeconds.With(l),
		queueDepth:     m.queueDepth.With(l),
	}
	md.initFailures()
	return md
}

// Model records the metrics of one model version. The nil *Model is valid
// and records nothing.
type Model struct {
	parent                                   *Metrics
	labels                                   prometheus.Labels
	success, count, execCount                prometheus.Counter
	failure                                  *prometheus.CounterVec // by reason
	requestUS, queueUS                       prometheus.Counter
	computeInputUS, computeInferUS, outputUS prometheus.Counter
	pending                                  prometheus.Gauge
	batchSize, requestSeconds, queueDepth    prometheus.Observer
}

// Answers sums what successful requests add to the counters that are
// totals over requests (success, inference count, queue and compute
// microseconds), so that a batch's requests are counted in one Answered
// call from the instance that ran it: each request's caller counting its
// own made every core that woke with an answer write the same counters'
// cache lines at once. The zero value is empty.
type Answers struct {
	requests, rows                      int
	queueUS, inputUS, inferUS, outputUS float64 // whole µs per request, summed
}

// Add counts one successful request of rows texts with its queue and
// compute times.
func (a *Answers) Add(rows int, queue, input, infer, output time.Duration) {
	a.requests++
	a.rows += rows
	a.queueUS += us(queue)
	a.inputUS += us(input)
	a.inferUS += us(infer)
	a.outputUS += us(output)
}

// Answered records the successful requests a sums; Completed records each
// one's latency.
func (m *Model) Answered(a *Answers) {
	if m == nil || a.requests == 0 {
		return
	}
	m.success.Add(float64(a.requests))
	m.count.Add(float64(a.rows))
	m.queueUS.Add(a.queueUS)
	m.computeInputUS.Add(a.inputUS)
	m.computeInferUS.Add(a.inferUS)
	m.outputUS.Add(a.outputUS)
}

// Completed records a successful request's latency, arrival to answer.
func (m *Model) Completed(total time.Duration) {
	if m == nil {
		return
	}
	m.requestSeconds.Observe(total.Seconds())
	m.requestUS.Add(us(total))
}

// Execution records one model execution of the given rows.
func (m *Model) Execution(rows int) {
	if m == nil {
		return
	}
	m.execCount.Inc()
	m.batchSize.Observe(float64(rows))
}

// Enqueued records the queue depth (rows waiting) seen by an arriving
// request, and pending the number of requests not yet answered.
func (m *Model) Enqueued(depthRows int) {
	if m == nil {
		return
	}
	m.queueDepth.Observe(float64(depthRows))
}

// Pending sets the number of requests accepted and not yet executed.
func (m *Model) Pending(n int) {
	if m == nil {
		return
	}
	m.pending.Set(float64(n))
}

// Delete removes the model version's series, as Triton does when a model is
// unloaded, so that scrapes stop reporting a model that is gone.
func (m *Model) Delete() {
	if m == nil {
		return
	}
	p := m.parent
	p.failure.DeletePartialMatch(m.labels)
	for _, v := range []*prometheus.CounterVec{p.success, p.count, p.execCount, p.requestUS, p.queueUS, p.computeInputUS, p.computeInferUS, p.outputUS} {
		v.Delete(m.labels)
	}
	p.pending.Delete(m.labels)
	for _, h := range []*prometheus.HistogramVec{p.batchSize, p.requestSeconds, p.queueDepth} {
		h.Delete(m.labels)
	}
}

func us(d time.Duration) float64 { return float64(d.Microseconds()) }
