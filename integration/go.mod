module github.com/fairpool/fairpool/integration

go 1.26

require (
	github.com/fairpool/fairpool v0.0.0
	github.com/fairpool/fairpool/fairpgx v0.0.0
	github.com/go-sql-driver/mysql v1.10.1
	github.com/jackc/pgx/v5 v5.12.0
	go.uber.org/goleak v1.3.0
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)

replace github.com/fairpool/fairpool => ../

replace github.com/fairpool/fairpool/fairpgx => ../fairpgx
