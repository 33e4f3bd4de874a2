package fairpool

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestConfigErrorsNameFieldAndValue(t *testing.T) {
	open := func(context.Context) (int, error) { return 0, nil }
	cases := []struct {
		cfg  Config[int]
		want string
	}{
		{Config[int]{MaxSize: 1}, "Config.Open must not be nil"},
		{Config[int]{Open: open}, "Config.MaxSize must be >= 1, got 0"},
		{Config[int]{Open: open, MaxSize: -3}, "Config.MaxSize must be >= 1, got -3"},
		{Config[int]{Open: open, MaxSize: 2, MinIdle: -1}, "Config.MinIdle must be >= 0, got -1"},
		{Config[int]{Open: open, MaxSize: 2, MinIdle: 3}, "Config.MinIdle must be <= MaxSize (2), got 3"},
		{Config[int]{Open: open, MaxSize: 2, MaxIdle: -1}, "Config.MaxIdle must be >= 0, got -1"},
		{Config[int]{Open: open, MaxSize: 2, MaxIdle: 5}, "Config.MaxIdle must be <= MaxSize (2), got 5"},
		{Config[int]{Open: open, MaxSize: 4, MinIdle: 3, MaxIdle: 2}, "Config.MaxIdle must be >= MinIdle (3), got 2"},
		{Config[int]{Open: open, MaxSize: 1, CheckAfter: -time.Second}, "Config.CheckAfter must be >= 0, got -1s"},
		{Config[int]{Open: open, MaxSize: 1, MaxLifetime: -time.Minute}, "Config.MaxLifetime must be >= 0, got -1m0s"},
		{Config[int]{Open: open, MaxSize: 1, MaxLifetimeJitter: -1}, "Config.MaxLifetimeJitter must be >= 0, got -1ns"},
		{Config[int]{Open: open, MaxSize: 1, MaxLifetime: time.Minute, MaxLifetimeJitter: 2 * time.Minute}, "Config.MaxLifetimeJitter must be <= MaxLifetime (1m0s), got 2m0s"},
		{Config[int]{Open: open, MaxSize: 1, MaxLifetimeJitter: time.Second}, "Config.MaxLifetimeJitter must be <= MaxLifetime (0s), got 1s"},
		{Config[int]{Open: open, MaxSize: 1, MaxIdleTime: -time.Second}, "Config.MaxIdleTime must be >= 0, got -1s"},
		{Config[int]{Open: open, MaxSize: 1, OpenTimeout: -time.Second}, "Config.OpenTimeout must be >= 0, got -1s"},
		{Config[int]{Open: open, MaxSize: 1, WaitOrder: 7}, "Config.WaitOrder must be FIFO, LIFO or Adaptive, got WaitOrder(7)"},
	}
	for _, c := range cases {
		p, err := New(c.cfg)
		if err == nil {
			p.Close(context.Background())
			t.Errorf("New(%+v) succeeded, want error %q", c.cfg, c.want)
			continue
		}
		if got := err.Error(); got != "fairpool: "+c.want {
			t.Errorf("error = %q, want %q", got, "fairpool: "+c.want)
		}
	}
}

func TestConfigOnlyRequiredFieldsGetsDefaults(t *testing.T) {
	p, err := New(Config[int]{MaxSize: 3, Open: func(context.Context) (int, error) { return 1, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	c := p.cfg
	if c.AcquireTimeout != 5*time.Second || c.OpenTimeout != 30*time.Second || c.CheckAfter != time.Second || c.MaxIdle != 3 || c.WaitOrder != FIFO || c.Logger == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	if p.keeperRunning {
		t.Error("keeper started with nothing to keep")
	}
}

func TestWaitOrderString(t *testing.T) {
	if FIFO.String() != "FIFO" || LIFO.String() != "LIFO" || !strings.Contains(WaitOrder(9).String(), "9") {
		t.Error("WaitOrder.String")
	}
}
