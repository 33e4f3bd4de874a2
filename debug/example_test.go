package debug_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/debug"
)

// Any *fairpool.Pool[T] is a Source.
var _ debug.Source = (*fairpool.Pool[int])(nil)

func ExampleNewHandler() {
	pool, err := fairpool.New(fairpool.Config[int]{
		MaxSize: 2,
		Open:    func(context.Context) (int, error) { return 1, nil },
	})
	if err != nil {
		panic(err)
	}
	defer pool.Close(context.Background())

	h := debug.NewHandler()
	if err := h.Add("orders", pool); err != nil {
		panic(err)
	}
	// A program serves h on an admin-only listener:
	//
	//	admin := http.NewServeMux()
	//	admin.Handle("/debug/pools", h)
	//	go http.ListenAndServe("127.0.0.1:6060", admin)

	lease, err := pool.Acquire(context.Background())
	if err != nil {
		panic(err)
	}
	defer lease.Release()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pools?format=json", nil))
	var page struct {
		Pools []struct {
			Name  string
			Stats fairpool.Stats
		}
	}
	if err := json.NewDecoder(rec.Body).Decode(&page); err != nil {
		panic(err)
	}
	for _, p := range page.Pools {
		fmt.Printf("%s: %d of %d in use, %d waiting\n", p.Name, p.Stats.InUse, p.Stats.MaxSize, p.Stats.Waiting)
	}
	// Output: orders: 1 of 2 in use, 0 waiting
}

func ExampleGroup() {
	tenants, err := fairpool.NewGroup(fairpool.GroupConfig[string, int]{
		PerKeyMax: 2,
		GlobalMax: 10,
		Open:      func(context.Context, string) (int, error) { return 1, nil },
	})
	if err != nil {
		panic(err)
	}
	defer tenants.Close(context.Background())

	h := debug.NewHandler()
	if err := h.Add("tenants", debug.Group(tenants)); err != nil {
		panic(err)
	}

	lease, err := tenants.Acquire(context.Background(), "acme")
	if err != nil {
		panic(err)
	}
	defer lease.Release()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pools?format=json", nil))
	var page struct {
		Pools []struct {
			Name  string
			Stats fairpool.Stats
			Keys  []struct {
				Key   string
				Stats fairpool.Stats
			}
		}
	}
	if err := json.NewDecoder(rec.Body).Decode(&page); err != nil {
		panic(err)
	}
	for _, p := range page.Pools {
		fmt.Printf("%s: %d of %d in use\n", p.Name, p.Stats.InUse, p.Stats.MaxSize)
		for _, k := range p.Keys {
			fmt.Printf("  %s: %d of %d in use, %d waiting\n", k.Key, k.Stats.InUse, k.Stats.MaxSize, k.Stats.Waiting)
		}
	}
	// Output:
	// tenants: 1 of 10 in use
	//   acme: 1 of 2 in use, 0 waiting
}
