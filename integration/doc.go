// Package integration tests sqlpool against real servers: PostgreSQL
// through pgx's stdlib driver and MariaDB (or MySQL) through
// go-sql-driver/mysql. It is a module of its own so that the drivers stay
// out of fairpool's go.mod; it has no code but its tests.
//
// The servers are found through FAIRPOOL_PG_DSN (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable) and
// FAIRPOOL_MYSQL_DSN (default root@tcp(127.0.0.1:3306)/test). Tests skip
// when a server does not answer, and fail instead when CI=true.
//
//	go test -race ./...                                    # the tests, about a minute
//	for i in 1 2 3 4 5 6; do go test -run '^$' -bench SQL -benchtime 2s; done | tee sql.txt
//	benchstat -col /pool sql.txt                           # sqlpool against database/sql
package integration
