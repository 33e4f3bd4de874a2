package fairpool_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/fairpool/fairpool"
)

// tenantDB stands in for a connection to one tenant's database.
type tenantDB struct {
	tenant string
	n      int // how many connections of the tenant were opened before it, plus one
}

func newTenantGroup() *fairpool.Group[string, *tenantDB] {
	var mu sync.Mutex
	opened := map[string]int{}
	group, err := fairpool.NewGroup(fairpool.GroupConfig[string, *tenantDB]{
		Name: "tenants",
		Open: func(ctx context.Context, tenant string) (*tenantDB, error) {
			mu.Lock()
			defer mu.Unlock()
			opened[tenant]++ // a real Open would dial the tenant's database
			return &tenantDB{tenant: tenant, n: opened[tenant]}, nil
		},
		PerKeyMax: 2, // connections per tenant
		GlobalMax: 3, // connections of the whole process
	})
	if err != nil {
		panic(err)
	}
	return group
}

func ExampleGroup() {
	group := newTenantGroup()
	defer group.Close(context.Background())
	ctx := context.Background()

	// One tenant's request. The tenant's pool is made on first use;
	// code below that calls With on the same tenant with this ctx gets
	// the same connection.
	err := group.With(ctx, "acme", func(ctx context.Context, db *tenantDB) error {
		return group.With(ctx, "acme", func(ctx context.Context, inner *tenantDB) error {
			fmt.Println("acme, nested: same connection:", inner == db)
			return nil
		})
	})
	if err != nil {
		panic(err)
	}

	// A transfer between two tenants: both connections or neither, taken
	// in ascending key order whatever order they are asked in, so two
	// opposite transfers cannot deadlock.
	err = group.WithAll(ctx, []string{"globex", "acme"}, func(ctx context.Context, dbs []*tenantDB) error {
		fmt.Println("transfer from", dbs[0].tenant, "to", dbs[1].tenant)
		return nil
	})
	if err != nil {
		panic(err)
	}

	s := group.Stats()
	fmt.Println("tenants:", s.KeyPools, "connections:", s.Total.Open, "acme's acquires:", s.Keys["acme"].Acquires)
	// Output:
	// acme, nested: same connection: true
	// transfer from globex to acme
	// tenants: 2 connections: 2 acme's acquires: 2
}

func ExampleGroup_AcquireAll() {
	group := newTenantGroup()
	defer group.Close(context.Background())
	ctx := context.Background()

	set, err := group.AcquireAll(ctx, "shard_2", "shard_0", "shard_1")
	if err != nil {
		panic(err)
	}
	fmt.Println("taken in order:", set.Keys())
	fmt.Println(set.Value("shard_1").tenant)
	set.Release()

	_, err = group.AcquireAll(ctx, "shard_0", "shard_0")
	fmt.Println(err)
	_, err = group.AcquireAll(ctx, "a", "b", "c", "d")
	fmt.Println(err)
	// Output:
	// taken in order: [shard_0 shard_1 shard_2]
	// shard_1
	// fairpool: duplicate key: shard_0
	// fairpool: more keys than GlobalMax: 4 keys, GlobalMax 3
}
