// Package browsertest drives the debug page (package
// github.com/fairpool/fairpool/debug) in a real, headless Chromium. It is
// its own module, holding only tests, so that the core never depends on
// chromedp.
//
// The test needs /usr/bin/chromium (Debian's chromium package). Without it
// the test is skipped, unless CI=true, where it fails. With
// FAIRPOOL_SCREENSHOT=1 it also writes the screenshot README shows to
// docs/debug-page.png.
package browsertest
