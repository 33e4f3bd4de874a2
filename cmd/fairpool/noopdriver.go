package main

import (
	"context"
	"database/sql/driver"
	"errors"
)

// The no-op database/sql driver: its connections do nothing and never
// fail, so the fairness experiment measures database/sql's pool and nothing
// else. database/sql asks only for Connect, Driver, Prepare, Close and
// Begin; the experiment never runs a statement.
type (
	noopConnector struct{}
	noopDriver    struct{}
	noopConn      struct{}
)

// errNoop is what the no-op driver says to anything beyond checkout.
var errNoop = errors.New("noop driver: not supported")

func (noopConnector) Connect(context.Context) (driver.Conn, error) { return noopConn{}, nil }
func (noopConnector) Driver() driver.Driver                        { return noopDriver{} }
func (noopDriver) Open(string) (driver.Conn, error)                { return noopConn{}, nil }
func (noopConn) Prepare(string) (driver.Stmt, error)               { return nil, errNoop }
func (noopConn) Close() error                                      { return nil }
func (noopConn) Begin() (driver.Tx, error)                         { return nil, errNoop }
