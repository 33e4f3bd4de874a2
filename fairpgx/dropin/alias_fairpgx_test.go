//go:build !pgxpool

package dropin_test

import "github.com/fairpool/fairpool/fairpgx"

// The names the drop-in test uses, from fairpgx. Build with -tags pgxpool
// to take them from pgxpool instead.
type (
	Pool             = fairpgx.Pool
	Conn             = fairpgx.Conn
	Config           = fairpgx.Config
	ShouldPingParams = fairpgx.ShouldPingParams
)

var (
	New           = fairpgx.New
	NewWithConfig = fairpgx.NewWithConfig
	ParseConfig   = fairpgx.ParseConfig
)

const impl = "fairpgx"
