package fairpool_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The Go examples in the Markdown files are code a reader copies, so they
// are built like code: every ```go block in README.md, docs/*.md,
// bench/README.md and cmd/fairpool/README.md is a complete Go file
// (package clause, imports, declarations) and must compile as it is.
// There is no wrapping of fragments: a block a reader can paste is the one
// that was built. Text that is not meant to compile (output, JSON, shell)
// goes in a block of another language or an indented one.
//
// A block is built in the module that has what it imports: the fairpgx
// module for pgx, fairprom's for Prometheus, fairotel's for OpenTelemetry,
// the core module otherwise. Each block becomes a package of its own in a
// temporary directory under that module, and one `go build` per module
// builds them all.

// docFiles are the Markdown files whose Go blocks are built.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"README.md", filepath.Join("bench", "README.md"), filepath.Join("cmd", "fairpool", "README.md")}, files...)
}

// goBlock is one ```go block: where it is and what it says.
type goBlock struct {
	file string
	line int // of the opening fence
	src  []byte
}

func (b goBlock) String() string { return b.file + ":" + strconv.Itoa(b.line) }

// goBlocks returns the ```go blocks of a Markdown file.
func goBlocks(t *testing.T, file string) []goBlock {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	var blocks []goBlock
	var cur *goBlock
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```go":
			cur = &goBlock{file: file, line: n}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.src = append(cur.src, line...)
			cur.src = append(cur.src, '\n')
		}
	}
	if cur != nil {
		t.Errorf("%v: ```go block not closed", cur)
	}
	return blocks
}

// moduleFor returns the directory of the module a block is built in,
// from what it imports.
func moduleFor(src []byte) string {
	s := string(src)
	switch {
	case strings.Contains(s, `"github.com/fairpool/fairpool/fairpgx"`), strings.Contains(s, `"github.com/jackc/pgx/`):
		return "fairpgx"
	case strings.Contains(s, `"github.com/fairpool/fairpool/fairprom"`), strings.Contains(s, `"github.com/prometheus/`):
		return "fairprom"
	case strings.Contains(s, `"github.com/fairpool/fairpool/fairotel"`), strings.Contains(s, `"go.opentelemetry.io/`):
		return "fairotel"
	}
	return "."
}

// errLine matches a compiler position in a block's file: its directory
// and line.
var errLine = regexp.MustCompile(`docexample[0-9]+/(b[0-9]+)/example\.go:([0-9]+)`)

func TestDocExamplesCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every Go block of the docs")
	}
	byModule := map[string][]goBlock{}
	total := 0
	for _, f := range docFiles(t) {
		for _, b := range goBlocks(t, f) {
			if !bytes.HasPrefix(bytes.TrimSpace(b.src), []byte("package ")) {
				t.Errorf("%v: a ```go block must be a complete file, starting with its package clause", b)
				continue
			}
			m := moduleFor(b.src)
			byModule[m] = append(byModule[m], b)
			total++
		}
	}
	if total == 0 {
		t.Fatal("no ```go block found: the Quick start at least should have one")
	}
	mods := make([]string, 0, len(byModule))
	for m := range byModule {
		mods = append(mods, m)
	}
	slices.Sort(mods)
	for _, m := range mods {
		blocks := byModule[m]
		// Under the module, so that its go.mod (and the workspace) resolve
		// the imports; a name the go tool does not skip, so it builds.
		tmp, err := os.MkdirTemp(m, "docexample")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(tmp) })
		where := map[string]goBlock{}
		for i, b := range blocks {
			dir := filepath.Join(tmp, fmt.Sprintf("b%d", i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "example.go"), b.src, 0o644); err != nil {
				t.Fatal(err)
			}
			where[filepath.Base(dir)] = b
		}
		cmd := exec.Command("go", "build", "./"+filepath.Base(tmp)+"/...")
		cmd.Dir = m
		out, err := cmd.CombinedOutput()
		if err != nil {
			// Name the Markdown file and line for each error, not the
			// temporary file.
			msg := errLine.ReplaceAllStringFunc(string(out), func(s string) string {
				m := errLine.FindStringSubmatch(s)
				b, ok := where[m[1]]
				if !ok {
					return s
				}
				n, _ := strconv.Atoi(m[2])
				return b.file + ":" + strconv.Itoa(b.line+n)
			})
			t.Errorf("Go blocks built in module %s do not compile:\n%s", m, msg)
		}
	}
}
