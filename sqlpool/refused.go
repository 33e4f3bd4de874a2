package sqlpool

import (
	"errors"
	"strings"
)

// IsRefusal reports whether err, from opening a connection, means the
// server is full rather than broken, for the drivers sqlpool knows; it is
// the default Config.Refused. A refused open fails no caller: the pool
// waits for the connections it holds and probes for room with back-off
// (see fairpool.Config.Refused).
//
//   - PostgreSQL (pgx's stdlib driver, lib/pq): SQLSTATE 53300
//     too_many_connections, read through the error's SQLState() method.
//
//   - MySQL and MariaDB (go-sql-driver/mysql): error 1040 ("Too many
//     connections") and 1203 (max_user_connections reached). sqlpool
//     imports nothing but the standard library, and *mysql.MySQLError
//     has no method that gives its number, so the number is read from
//     the message the driver formats, "Error 1040 (08004): ...". Set
//     Config.Refused to classify by the type itself, as in the example
//     below.
//
// For example, with go-sql-driver/mysql imported:
//
//	cfg.Refused = func(err error) bool {
//		var me *mysql.MySQLError
//		return errors.As(err, &me) && (me.Number == 1040 || me.Number == 1203)
//	}
func IsRefusal(err error) bool {
	var st interface{ SQLState() string }
	if errors.As(err, &st) && st.SQLState() == "53300" {
		return true
	}
	for ; err != nil; err = errors.Unwrap(err) {
		msg := err.Error()
		if strings.HasPrefix(msg, "Error 1040 ") || strings.HasPrefix(msg, "Error 1040:") ||
			strings.HasPrefix(msg, "Error 1203 ") || strings.HasPrefix(msg, "Error 1203:") {
			return true
		}
	}
	return false
}
