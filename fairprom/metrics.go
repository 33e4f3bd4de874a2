package fairprom

import (
	"github.com/fairpool/fairpool"
	"github.com/prometheus/client_golang/prometheus"
)

type metric struct {
	desc  *prometheus.Desc
	value func(fairpool.Stats) float64
}

func newMetric(name, help string, value func(fairpool.Stats) float64) metric {
	return metric{prometheus.NewDesc(name, help, []string{"pool", "key"}, nil), value}
}

var gauges = []metric{
	newMetric("fairpool_max_connections", "Config.MaxSize: the most connections the pool may hold.",
		func(s fairpool.Stats) float64 { return float64(s.MaxSize) }),
	newMetric("fairpool_open_connections", "Connections that exist: idle, in use, opening and closing.",
		func(s fairpool.Stats) float64 { return float64(s.Open) }),
	newMetric("fairpool_idle_connections", "Connections idle in the pool.",
		func(s fairpool.Stats) float64 { return float64(s.Idle) }),
	newMetric("fairpool_in_use_connections", "Connections leased out.",
		func(s fairpool.Stats) float64 { return float64(s.InUse) }),
	newMetric("fairpool_opening_connections", "Connections being opened.",
		func(s fairpool.Stats) float64 { return float64(s.Opening) }),
	newMetric("fairpool_waiting_goroutines", "Goroutines waiting for a connection.",
		func(s fairpool.Stats) float64 { return float64(s.Waiting) }),
}

var counters = []metric{
	newMetric("fairpool_acquires_total", "Connections handed out.",
		func(s fairpool.Stats) float64 { return float64(s.Acquires) }),
	newMetric("fairpool_waits_total", "Acquires that had to wait in line.",
		func(s fairpool.Stats) float64 { return float64(s.Waits) }),
	newMetric("fairpool_wait_seconds_total", "Total time waited by acquires that got a connection.",
		func(s fairpool.Stats) float64 { return s.WaitDuration.Seconds() }),
	newMetric("fairpool_timeouts_total", "Waits ended by the pool's AcquireTimeout.",
		func(s fairpool.Stats) float64 { return float64(s.Timeouts) }),
	newMetric("fairpool_cancels_total", "Waits ended by the caller's context.",
		func(s fairpool.Stats) float64 { return float64(s.Cancels) }),
	newMetric("fairpool_sheds_total", "Acquires turned away because their context's deadline could not be met (ErrOverload).",
		func(s fairpool.Stats) float64 { return float64(s.Sheds) }),
	newMetric("fairpool_opens_total", "Connections opened.",
		func(s fairpool.Stats) float64 { return float64(s.Opens) }),
	newMetric("fairpool_open_errors_total", "Failed attempts to open a connection.",
		func(s fairpool.Stats) float64 { return float64(s.OpenErrors) }),
	newMetric("fairpool_leaks_total", "Leases held longer than Config.LeakThreshold.",
		func(s fairpool.Stats) float64 { return float64(s.Leaks) }),
	newMetric("fairpool_reclaims_total", "Leases dropped without Release and reclaimed by the garbage collector (Config.TrackLeases).",
		func(s fairpool.Stats) float64 { return float64(s.Reclaims) }),
}

var closedDesc = prometheus.NewDesc("fairpool_closed_total",
	"Connections closed, by reason: lifetime, idle_time, check_failed, reset_failed, discarded, over_max_idle, pool_closed, evicted (groups), reclaimed (lease dropped without Release).",
	[]string{"pool", "key", "reason"}, nil)

var waitDesc = prometheus.NewDesc("fairpool_acquire_wait_seconds",
	"Time from asking for a connection to getting it; acquires that did not wait count in the first bucket.",
	[]string{"pool", "key"}, nil)
