package sqlpool

import (
	"errors"
	"fmt"
	"testing"
)

type sqlStateErr string

func (e sqlStateErr) Error() string    { return "pg: " + string(e) }
func (e sqlStateErr) SQLState() string { return string(e) }

// mysqlErr formats as go-sql-driver/mysql's *MySQLError does.
type mysqlErr struct {
	n     uint16
	state string
}

func (e *mysqlErr) Error() string { return fmt.Sprintf("Error %d (%s): refused", e.n, e.state) }

func TestIsRefusal(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{sqlStateErr("53300"), true},
		{fmt.Errorf("connect: %w", sqlStateErr("53300")), true},
		{sqlStateErr("28P01"), false},
		{&mysqlErr{1040, "08004"}, true},
		{fmt.Errorf("open: %w", &mysqlErr{1203, "42000"}), true},
		{errors.New("Error 1203: too many user connections"), true},
		{&mysqlErr{1045, "28000"}, false},
		{&mysqlErr{10400, "HY000"}, false},
		{errors.New("dial tcp: connection refused"), false},
		{nil, false},
	} {
		if got := IsRefusal(tc.err); got != tc.want {
			t.Errorf("IsRefusal(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
