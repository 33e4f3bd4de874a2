package fairpgx

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// AcquireTracer traces Acquire, as pgxpool.AcquireTracer does with
// *fairpgx.Pool in place of *pgxpool.Pool. Set a ConnConfig.Tracer that
// implements it. Every method that acquires a connection (Exec, Query,
// Begin, With, ...) calls it; calls that reuse the connection of an
// enclosing With acquire nothing and do not.
type AcquireTracer interface {
	// TraceAcquireStart is called at the beginning of Acquire. The
	// returned context is used for the rest of the call and passed to
	// TraceAcquireEnd.
	TraceAcquireStart(ctx context.Context, pool *Pool, data TraceAcquireStartData) context.Context
	// TraceAcquireEnd is called when Acquire returns, with the connection
	// or the error.
	TraceAcquireEnd(ctx context.Context, pool *Pool, data TraceAcquireEndData)
}

// TraceAcquireStartData is passed to TraceAcquireStart. It is empty, as
// pgxpool's is.
type TraceAcquireStartData struct{}

// TraceAcquireEndData is passed to TraceAcquireEnd.
type TraceAcquireEndData struct {
	Conn *pgx.Conn // the connection acquired, nil on error
	Err  error
}

// ReleaseTracer traces Conn.Release, as pgxpool.ReleaseTracer does.
type ReleaseTracer interface {
	// TraceRelease is called at the beginning of the first Release of a
	// Conn, before the connection goes back or is closed. Hijack does
	// not call it.
	TraceRelease(pool *Pool, data TraceReleaseData)
}

// TraceReleaseData is passed to TraceRelease.
type TraceReleaseData struct {
	Conn *pgx.Conn
}
