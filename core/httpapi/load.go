package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayhq/relay/core"
)

// Load is how the server's other parts tell /metrics how busy they are.
// Each func is called at every scrape, so it must be cheap (the parts
// keep their counts with atomic adds); a nil one exports nothing.
type Load struct {
	// GroupWriter is the store's group writer (core.GroupWriterStats).
	GroupWriter func() core.GroupWriterStats
	// Connectors are the connector runtimes' pools, one func each.
	Connectors []func() core.PoolStats
	// AuditVerify is the periodic check of the audit log's chains; nil
	// when it is off.
	AuditVerify func() core.AuditVerifyStats
}

// loadCollector turns Load's snapshots into series at each scrape. The
// series have no labels but the runtime's (native, wasm): their number is
// fixed.
type loadCollector struct {
	load Load

	writers, writerBusy, writesWaiting, groups, groupWrites, groupWait *prometheus.Desc

	inUse, limit, inFlight, waiting, waited *prometheus.Desc

	auditInterval, auditRecords, auditFailures, auditErrors, auditLastSuccess *prometheus.Desc
}

func newLoadCollector(load Load) *loadCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &loadCollector{
		load: load,

		writers: desc("relay_store_group_writers",
			"Goroutines writing the store's group commits, each one group at a time."),
		writerBusy: desc("relay_store_group_busy_seconds_total",
			"Time the group writers spent writing groups, summed over writers; its rate over relay_store_group_writers is their utilization."),
		writesWaiting: desc("relay_store_group_writes_waiting",
			"Store writes handed to the group writer and not yet answered, the group being written included."),
		groups: desc("relay_store_groups_total",
			"Groups (shared transactions) the group writer wrote."),
		groupWrites: desc("relay_store_group_writes_total",
			"Store writes in the groups written; over relay_store_groups_total, the mean group size."),
		groupWait: desc("relay_store_group_wait_seconds_total",
			"Time store writes spent from being handed in to their answer, summed; over relay_store_group_writes_total, the mean wait."),

		inUse: desc("relay_connector_instances_in_use",
			"Native: live plugin processes. WASM: instances serving a call.", "runtime"),
		limit: desc("relay_connector_instances_limit",
			"Native: connector versions called since the start, one process each. WASM: the pool size times the versions loaded.", "runtime"),
		inFlight: desc("relay_connector_calls_in_flight",
			"Connector calls running.", "runtime"),
		waiting: desc("relay_connector_calls_waiting",
			"Connector calls waiting for a process to start (native) or for a free instance (WASM).", "runtime"),
		waited: desc("relay_connector_wait_seconds_total",
			"Time connector calls spent waiting for a process or an instance, summed.", "runtime"),

		auditInterval: desc("relay_audit_verify_interval_seconds",
			"Time between passes of the audit log's periodic verification."),
		auditRecords: desc("relay_audit_verified_records_total",
			"Audit records the periodic verification has verified."),
		auditFailures: desc("relay_audit_verify_failures_total",
			"Passes of the audit log's periodic verification that found a broken hash chain."),
		auditErrors: desc("relay_audit_verify_errors_total",
			"Passes of the audit log's periodic verification that could not read the log."),
		auditLastSuccess: desc("relay_audit_verify_last_success_timestamp_seconds",
			"When the last pass that found every audit chain whole began, in Unix seconds; 0 before the first."),
	}
}

func (c *loadCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.load.GroupWriter != nil {
		for _, d := range []*prometheus.Desc{c.writers, c.writerBusy, c.writesWaiting, c.groups, c.groupWrites, c.groupWait} {
			ch <- d
		}
	}
	if len(c.load.Connectors) > 0 {
		for _, d := range []*prometheus.Desc{c.inUse, c.limit, c.inFlight, c.waiting, c.waited} {
			ch <- d
		}
	}
	if c.load.AuditVerify != nil {
		for _, d := range []*prometheus.Desc{c.auditInterval, c.auditRecords, c.auditFailures, c.auditErrors, c.auditLastSuccess} {
			ch <- d
		}
	}
}

func (c *loadCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if f := c.load.GroupWriter; f != nil {
		s := f()
		gauge(c.writers, float64(s.Writers))
		counter(c.writerBusy, s.Busy.Seconds())
		gauge(c.writesWaiting, float64(s.Waiting))
		counter(c.groups, float64(s.Groups))
		counter(c.groupWrites, float64(s.Writes))
		counter(c.groupWait, s.Waited.Seconds())
	}
	for _, f := range c.load.Connectors {
		s := f()
		gauge(c.inUse, float64(s.InUse), s.Runtime)
		gauge(c.limit, float64(s.Limit), s.Runtime)
		gauge(c.inFlight, float64(s.InFlight), s.Runtime)
		gauge(c.waiting, float64(s.Waiting), s.Runtime)
		counter(c.waited, s.Waited.Seconds(), s.Runtime)
	}
	if f := c.load.AuditVerify; f != nil {
		s := f()
		gauge(c.auditInterval, s.Interval.Seconds())
		counter(c.auditRecords, float64(s.Records))
		counter(c.auditFailures, float64(s.Failures))
		counter(c.auditErrors, float64(s.Errors))
		last := 0.0
		if !s.LastSuccess.IsZero() {
			last = float64(s.LastSuccess.UnixNano()) / 1e9
		}
		gauge(c.auditLastSuccess, last)
	}
}
