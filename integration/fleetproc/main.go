// Command fleetproc is one process of a fleet, for the fleet tests: it
// runs goroutines that each call SELECT pg_sleep(0.002) in a loop through
// a fairpgx pool, and prints a JSON line every 50 ms, and a last one when
// -duration has passed, of what it holds and has served. The tests start
// several and kill some with SIGKILL.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
)

// Report is one line of output.
type Report struct {
	At       int64  `json:"at"`   // unix milliseconds
	Held     int    `json:"held"` // connections idle or in use
	Served   int64  `json:"served"`
	Failed   int64  `json:"failed"`
	Refused  int64  `json:"refused"`
	Final    bool   `json:"final,omitempty"`
	FirstErr string `json:"first_err,omitempty"`
}

func main() {
	dsn := flag.String("dsn", "", "connection string, pool_* parameters included")
	workers := flag.Int("goroutines", 16, "goroutines calling at once")
	duration := flag.Duration("duration", 4*time.Second, "how long to run")
	callTimeout := flag.Duration("call-timeout", 5*time.Second, "bound of one call, wait included")
	flag.Parse()
	if err := run(*dsn, *workers, *duration, *callTimeout); err != nil {
		fmt.Fprintln(os.Stderr, "fleetproc:", err)
		os.Exit(1)
	}
}

func run(dsn string, workers int, duration, callTimeout time.Duration) error {
	pool, err := fairpgx.New(context.Background(), dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	var served, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				_, err := pool.Exec(ctx, "SELECT pg_sleep(0.002)")
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				served.Add(1)
			}
		})
	}
	enc := json.NewEncoder(os.Stdout)
	report := func(final bool) {
		st := pool.Stats()
		r := Report{At: time.Now().UnixMilli(), Held: st.Idle + st.InUse, Served: served.Load(),
			Failed: failed.Load(), Refused: st.RefusedOpens, Final: final}
		if s, ok := firstErr.Load().(string); ok {
			r.FirstErr = s
		}
		enc.Encode(r)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	end := time.After(duration)
	for {
		select {
		case <-tick.C:
			report(false)
			continue
		case <-end:
		}
		break
	}
	close(stop)
	wg.Wait()
	report(true)
	return nil
}
