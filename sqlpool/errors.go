package sqlpool

import (
	"fmt"
	"strings"

	"github.com/fairpool/fairpool"
)

// brokenConnError is what WithConn and WithTx return when the connection
// broke during fn: it says so first, and unwraps to fn's error.
type brokenConnError struct {
	pool string
	err  error
}

func (e *brokenConnError) Error() string {
	return fmt.Sprintf("%sconnection broke: %v", prefix(e.pool), e.err)
}

func (e *brokenConnError) Unwrap() error { return e.err }

// Is makes errors.Is(err, fairpool.ErrBadConn) true.
func (e *brokenConnError) Is(target error) bool { return target == fairpool.ErrBadConn }

// prefix begins an error message about the pool named name, as fairpool's
// do: "sqlpool: pool "app": ", or "sqlpool: " for a pool without a Name.
func prefix(name string) string {
	if name == "" {
		return "sqlpool: "
	}
	return fmt.Sprintf("sqlpool: pool %q: ", name)
}

// configError names the field as the user wrote it: fairpool.New checks
// the fields sqlpool passes on, and calls them fairpool's Config's.
func configError(err error) error {
	if rest, ok := strings.CutPrefix(err.Error(), "fairpool: Config."); ok {
		return &renamedError{msg: "sqlpool: Config." + rest, err: err}
	}
	return err
}

// renamedError is an error of fairpool's, worded for sqlpool's user.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// poolError names the pool in an error that is otherwise a sentinel, as
// fairpool's errors do, and unwraps to the sentinel.
type poolError struct {
	pool string
	err  error
}

func (e *poolError) Error() string {
	return prefix(e.pool) + strings.TrimPrefix(e.err.Error(), "sqlpool: ")
}

func (e *poolError) Unwrap() error { return e.err }

// doomedError is what the outermost WithTx returns after rolling back
// because a nested WithTx failed; it unwraps to the nested error.
type doomedError struct {
	pool string
	err  error
}

func (e *doomedError) Error() string {
	// The nested error may already name the pool; once is enough.
	return prefix(e.pool) + "transaction rolled back: a nested WithTx failed: " + strings.TrimPrefix(e.err.Error(), prefix(e.pool))
}

func (e *doomedError) Unwrap() error { return e.err }

// rollbackError is fn's error when the rollback after it failed too: one
// line, where errors.Join would put a line break in the log, and both
// errors seen by errors.Is and errors.As.
type rollbackError struct {
	err, rerr error
}

func (e *rollbackError) Error() string {
	return fmt.Sprintf("%v; sqlpool: rollback: %v", e.err, e.rerr)
}

func (e *rollbackError) Unwrap() []error { return []error{e.err, e.rerr} }
