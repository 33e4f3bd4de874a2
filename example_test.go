package fairpool_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fairpool/fairpool"
)

// conn stands in for a real client: a database session, a cache client, a
// socket.
type conn struct{ id int }

func (c *conn) Close() error { return nil }

func newConfig() fairpool.Config[*conn] {
	var mu sync.Mutex
	next := 0
	return fairpool.Config[*conn]{
		Open: func(ctx context.Context) (*conn, error) {
			mu.Lock()
			defer mu.Unlock()
			next++
			return &conn{id: next}, nil
		},
		Close:   (*conn).Close,
		MaxSize: 2,
	}
}

func ExamplePool_Acquire() {
	pool, err := fairpool.New(newConfig())
	if err != nil {
		panic(err)
	}
	defer pool.Close(context.Background())

	lease, err := pool.Acquire(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Println("using connection", lease.Value().id)
	lease.Release() // or lease.Discard() if the connection broke
	lease.Release() // a second call does nothing

	lease, _ = pool.Acquire(context.Background())
	fmt.Println("reused connection", lease.Value().id)
	lease.Release()
	// Output:
	// using connection 1
	// reused connection 1
}

func ExamplePool_With() {
	pool, _ := fairpool.New(newConfig())
	defer pool.Close(context.Background())

	err := pool.With(context.Background(), func(ctx context.Context, c *conn) error {
		// Code below the outer With, given its ctx, gets the same
		// connection: nesting never takes a second one.
		return pool.With(ctx, func(ctx context.Context, inner *conn) error {
			fmt.Println("same connection:", inner == c)
			return nil
		})
	})
	fmt.Println("err:", err)
	// Output:
	// same connection: true
	// err: <nil>
}

func ExamplePool_With_badConn() {
	pool, _ := fairpool.New(newConfig())
	defer pool.Close(context.Background())

	err := pool.With(context.Background(), func(ctx context.Context, c *conn) error {
		return fmt.Errorf("read: connection reset: %w", fairpool.ErrBadConn)
	})
	fmt.Println(err)
	fmt.Println("discarded:", pool.Stats().ClosedDiscard)
	// Output:
	// read: connection reset: fairpool: bad connection
	// discarded: 1
}

func ExampleConfig() {
	pool, err := fairpool.New(fairpool.Config[*conn]{
		Name:    "cache",
		Open:    func(ctx context.Context) (*conn, error) { return &conn{}, nil },
		Close:   (*conn).Close,
		MaxSize: 10,
		MinIdle: 2, // kept open by a background keeper
		// Ping connections that sat idle for over a second before use.
		Check:      func(ctx context.Context, c *conn) error { return nil },
		CheckAfter: time.Second,
		// Retire connections after 30 minutes, spread over 5 more.
		MaxLifetime:       30 * time.Minute,
		MaxLifetimeJitter: 5 * time.Minute,
		MaxIdleTime:       5 * time.Minute,
		AcquireTimeout:    2 * time.Second,
	})
	if err != nil {
		panic(err)
	}
	defer pool.Close(context.Background())
	fmt.Println(pool.Stats().MaxSize)

	_, err = fairpool.New(fairpool.Config[*conn]{Open: func(context.Context) (*conn, error) { return &conn{}, nil }})
	fmt.Println(err)
	// Output:
	// 10
	// fairpool: Config.MaxSize must be >= 1, got 0
}

func ExampleTimeoutError() {
	cfg := newConfig()
	cfg.Name = "orders"
	cfg.MaxSize = 1
	cfg.AcquireTimeout = 10 * time.Millisecond
	pool, _ := fairpool.New(cfg)
	defer pool.Close(context.Background())

	held, _ := pool.Acquire(context.Background())
	defer held.Release()

	_, err := pool.Acquire(context.Background())
	var te *fairpool.TimeoutError
	if errors.As(err, &te) && errors.Is(err, fairpool.ErrTimeout) {
		fmt.Printf("pool %s: %d of %d in use, %d idle\n", te.Pool, te.InUse, te.MaxSize, te.Idle)
	}
	// Output:
	// pool orders: 1 of 1 in use, 0 idle
}
