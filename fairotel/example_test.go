package fairotel_test

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/fairotel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// dbConn stands for a driver's connection.
type dbConn struct{}

// Example reports a pool through an SDK MeterProvider; a ManualReader
// stands in for an exporter and shows the conventions' gauges.
func Example() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(ctx)

	m, err := fairotel.New(provider)
	if err != nil {
		panic(err)
	}
	defer m.Close()

	pool, err := fairpool.New(fairpool.Config[*dbConn]{
		MaxSize: 4,
		Open:    func(context.Context) (*dbConn, error) { return &dbConn{}, nil },
	})
	if err != nil {
		panic(err)
	}
	defer pool.Close(ctx)
	m.Add("orders", pool) // any time after New: it is read at each collection

	lease, err := pool.Acquire(ctx)
	if err != nil {
		panic(err)
	}
	defer lease.Release()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		panic(err)
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, metric := range sm.Metrics {
			sum, ok := metric.Data.(metricdata.Sum[int64])
			if !ok || !strings.HasPrefix(metric.Name, "db.client.connection.") {
				continue
			}
			for _, p := range sum.DataPoints {
				var attrs []string
				for _, kv := range p.Attributes.ToSlice() {
					attrs = append(attrs, fmt.Sprintf("%s=%s", kv.Key, kv.Value.Emit()))
				}
				lines = append(lines, fmt.Sprintf("%s %s {%s} %d",
					metric.Name, metric.Unit, strings.Join(attrs, ", "), p.Value))
			}
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// db.client.connection.count {connection} {db.client.connection.pool.name=orders, db.client.connection.state=idle} 0
	// db.client.connection.count {connection} {db.client.connection.pool.name=orders, db.client.connection.state=used} 1
	// db.client.connection.idle.max {connection} {db.client.connection.pool.name=orders} 4
	// db.client.connection.idle.min {connection} {db.client.connection.pool.name=orders} 0
	// db.client.connection.max {connection} {db.client.connection.pool.name=orders} 4
	// db.client.connection.pending_requests {request} {db.client.connection.pool.name=orders} 0
	// db.client.connection.timeouts {timeout} {db.client.connection.pool.name=orders} 0
}
