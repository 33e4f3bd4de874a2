// Package browsertest drives the debug page (package
// github.com/fairpool/fairpool/debug) in a real, headless Chromium. It is
// its own module, holding only tests, so that the core never depends on
// chromedp.
//
// It also holds the tests of sqlpool that need the real PostgreSQL and
// MariaDB (FAIRPOOL_PG_DSN, FAIRPOOL_MYSQL_DSN), since the core module
// takes no driver dependency, and the browser test shows a *sqlpool.Pool
// on PostgreSQL. Without a server those are skipped, unless CI=true, where
// they fail.
//
// The browser test needs /usr/bin/chromium (Debian's chromium package). Without it
// the test is skipped, unless CI=true, where it fails. With
// FAIRPOOL_SCREENSHOT=1 it also writes the screenshot docs/diagnostics.md shows to
// docs/debug-page.png.
package browsertest
