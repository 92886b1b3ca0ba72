// tlog-go-check: mirror and verify sealgate's log with the Go team's transparency-log
// packages, golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog: the code every
// `go` command uses to check the Go checksum database, from which the C2SP signed-note,
// tlog-checkpoint and tlog-tiles specifications were written. It shares no code with
// sealgate or with scripts/tlog-tiles-check.
//
// It opens the tlog-tiles checkpoint with note.Open and the given verifier key, reads
// the hash tiles through tlog.TileHashReader (which authenticates every tile against
// the signed root before handing out a hash), checks each entry of every entry bundle
// against the authenticated level-0 hashes, and checks sealgate's own RFC 6962
// endpoints with tlog.CheckRecord and tlog.CheckTree: inclusion proofs for a spread of
// entries and consistency proofs from a spread of earlier sizes, each also compared
// hash for hash with the proof tlog builds from the tiles.
//
// Exit status: 0 verified (a JSON summary on stdout), 1 the log does not verify (what
// failed is named), 2 usage or HTTP error.
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run scripts/tlog-go-check/main.go \
//	    -server http://127.0.0.1:8080 -token-file auditor-token \
//	    -key "$(curl -s http://127.0.0.1:8080/v1/ledger/key)"
//
// (Debian's golang-go and golang-golang-x-mod-dev provide Go and the packages.)
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tlog-tiles fixes the tile height at 8.
const height = 8

// errUsage marks a failure to check (exit 2), as opposed to a log that does not verify.
var errUsage = errors.New("usage")

type client struct {
	base  string
	token string
	http  *http.Client
	// Requests made, for the summary.
	requests int
}

func (c *client) get(path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	c.requests++
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", errUsage, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", errUsage, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s: HTTP %d: %s", errUsage, path, resp.StatusCode, body)
	}
	return body, nil
}

// tileReader serves tlog's tile requests from the tlog-tiles paths, which are the
// Go checksum database's without the height element: tile/L/N[.p/W].
type tileReader struct{ c *client }

func (r tileReader) Height() int { return height }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		body, err := r.c.get("/v1/ledger/tlog/" + tilesPath(t))
		if err != nil {
			return nil, err
		}
		data[i] = body
	}
	return data, nil
}

// SaveTiles: tiles are authenticated on every read, nothing is cached.
func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// tilesPath is the tlog-tiles path of a hash tile (level >= 0) or, for level -1,
// of the entry bundle covering the same entries.
func tilesPath(t tlog.Tile) string {
	goPath := t.Path() // tile/8/L/N[.p/W] or tile/8/data/N[.p/W]
	rest := strings.TrimPrefix(goPath, fmt.Sprintf("tile/%d/", height))
	return "tile/" + strings.Replace(rest, "data/", "entries/", 1)
}

type checkpoint struct {
	origin string
	tree   tlog.Tree
}

// openCheckpoint verifies a signed note with the key and reads its checkpoint body.
func openCheckpoint(msg []byte, verifier note.Verifier) (checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return checkpoint{}, fmt.Errorf("checkpoint body is not origin, size and root: %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return checkpoint{}, fmt.Errorf("checkpoint size %q", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint root %q: %v", lines[2], err)
	}
	if lines[0] != verifier.Name() {
		return checkpoint{}, fmt.Errorf("checkpoint origin %q is not the key's name %q", lines[0], verifier.Name())
	}
	return checkpoint{origin: lines[0], tree: tlog.Tree{N: size, Hash: root}}, nil
}

// decodeBundle splits an entry bundle: big-endian uint16 length, then the entry.
func decodeBundle(b []byte) ([][]byte, error) {
	var entries [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.New("bundle ends inside a length")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b)-2 < n {
			return nil, errors.New("bundle ends inside an entry")
		}
		entries = append(entries, b[2:2+n])
		b = b[2+n:]
	}
	return entries, nil
}

func hashes(encoded []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(encoded))
	for i, e := range encoded {
		h, err := tlog.ParseHash(e)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

func sameHashes(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// spread is about `count` distinct values in [lo, hi), both ends included.
func spread(lo, hi int64, count int64) []int64 {
	if hi <= lo {
		return nil
	}
	step := (hi - lo) / count
	if step < 1 {
		step = 1
	}
	var out []int64
	for x := lo; x < hi; x += step {
		out = append(out, x)
	}
	if out[len(out)-1] != hi-1 {
		out = append(out, hi-1)
	}
	return out
}

type summary struct {
	Origin           string `json:"origin"`
	TreeSize         int64  `json:"tree_size"`
	Root             string `json:"root"`
	Entries          int64  `json:"entries"`
	InclusionProofs  int    `json:"inclusion_proofs"`
	ConsistencyProof int    `json:"consistency_proofs"`
	Requests         int    `json:"requests"`
	Client           string `json:"client"`
}

func check(c *client, verifier note.Verifier) (summary, error) {
	msg, err := c.get("/v1/ledger/tlog/checkpoint")
	if err != nil {
		return summary{}, err
	}
	cp, err := openCheckpoint(msg, verifier)
	if err != nil {
		return summary{}, err
	}
	tree := cp.tree
	if tree.N == 0 {
		return summary{}, fmt.Errorf("%w: the log is empty: nothing to check", errUsage)
	}
	hr := tlog.TileHashReader(tree, tileReader{c})
	// TreeHash through the tile reader authenticates the tiles on the right edge.
	if th, err := tlog.TreeHash(tree.N, hr); err != nil {
		return summary{}, fmt.Errorf("tree hash from the tiles: %v", err)
	} else if th != tree.Hash {
		return summary{}, fmt.Errorf("tree hash from the tiles %v, checkpoint says %v", th, tree.Hash)
	}

	// Every entry, against the authenticated level-0 hashes, a bundle at a time.
	var entries int64
	for start := int64(0); start < tree.N; start += 1 << height {
		width := tree.N - start
		if width > 1<<height {
			width = 1 << height
		}
		bundle := tlog.Tile{H: height, L: -1, N: start >> height, W: int(width)}
		body, err := c.get("/v1/ledger/tlog/" + tilesPath(bundle))
		if err != nil {
			return summary{}, err
		}
		records, err := decodeBundle(body)
		if err != nil {
			return summary{}, fmt.Errorf("%s: %v", tilesPath(bundle), err)
		}
		if int64(len(records)) != width {
			return summary{}, fmt.Errorf("%s: %d entries, expected %d", tilesPath(bundle), len(records), width)
		}
		indexes := make([]int64, width)
		for i := range indexes {
			indexes[i] = tlog.StoredHashIndex(0, start+int64(i))
		}
		stored, err := hr.ReadHashes(indexes)
		if err != nil {
			return summary{}, fmt.Errorf("hash tiles for entries %d..%d: %v", start, start+width, err)
		}
		for i, record := range records {
			if got := tlog.RecordHash(record); got != stored[i] {
				return summary{}, fmt.Errorf("entry %d hashes to %v, the signed tree holds %v", start+int64(i), got, stored[i])
			}
		}
		entries += width
	}

	// sealgate's inclusion proofs, checked by tlog and compared with tlog's own.
	inclusion := 0
	for _, index := range spread(0, tree.N, 24) {
		body, err := c.get(fmt.Sprintf("/v1/ledger/proof/inclusion?index=%d&tree_size=%d", index, tree.N))
		if err != nil {
			return summary{}, err
		}
		var answer struct {
			LeafHash string   `json:"leaf_hash"`
			Proof    []string `json:"proof"`
		}
		if err := json.Unmarshal(body, &answer); err != nil {
			return summary{}, fmt.Errorf("%w: inclusion proof of %d: %v", errUsage, index, err)
		}
		leaf, err := tlog.ParseHash(answer.LeafHash)
		if err != nil {
			return summary{}, fmt.Errorf("inclusion proof of %d: leaf hash: %v", index, err)
		}
		proof, err := hashes(answer.Proof)
		if err != nil {
			return summary{}, fmt.Errorf("inclusion proof of %d: %v", index, err)
		}
		if err := tlog.CheckRecord(proof, tree.N, tree.Hash, index, leaf); err != nil {
			return summary{}, fmt.Errorf("inclusion proof of %d in %d: %v", index, tree.N, err)
		}
		own, err := tlog.ProveRecord(tree.N, index, hr)
		if err != nil {
			return summary{}, fmt.Errorf("tlog.ProveRecord(%d, %d): %v", tree.N, index, err)
		}
		if !sameHashes(proof, own) {
			return summary{}, fmt.Errorf("inclusion proof of %d in %d differs from the one built from the tiles", index, tree.N)
		}
		inclusion++
	}

	// Consistency from earlier sizes, against roots rebuilt from the authenticated tiles.
	consistency := 0
	for _, first := range spread(1, tree.N+1, 24) {
		old, err := tlog.TreeHash(first, hr)
		if err != nil {
			return summary{}, fmt.Errorf("tree hash of size %d from the tiles: %v", first, err)
		}
		body, err := c.get(fmt.Sprintf("/v1/ledger/proof/consistency?first=%d&second=%d", first, tree.N))
		if err != nil {
			return summary{}, err
		}
		var answer struct {
			Proof []string `json:"proof"`
		}
		if err := json.Unmarshal(body, &answer); err != nil {
			return summary{}, fmt.Errorf("%w: consistency proof %d..%d: %v", errUsage, first, tree.N, err)
		}
		proof, err := hashes(answer.Proof)
		if err != nil {
			return summary{}, fmt.Errorf("consistency proof %d..%d: %v", first, tree.N, err)
		}
		if err := tlog.CheckTree(proof, tree.N, tree.Hash, first, old); err != nil {
			return summary{}, fmt.Errorf("consistency proof %d..%d: %v", first, tree.N, err)
		}
		own, err := tlog.ProveTree(tree.N, first, hr)
		if err != nil {
			return summary{}, fmt.Errorf("tlog.ProveTree(%d, %d): %v", tree.N, first, err)
		}
		if !sameHashes(proof, own) {
			return summary{}, fmt.Errorf("consistency proof %d..%d differs from the one built from the tiles", first, tree.N)
		}
		consistency++
	}

	// The API's checkpoint is a signed note under the same key, of a tree that
	// contains this one or is contained in it.
	msg, err = c.get("/v1/ledger/checkpoint")
	if err != nil {
		return summary{}, err
	}
	if _, err := openCheckpoint(msg, verifier); err != nil {
		return summary{}, fmt.Errorf("/v1/ledger/checkpoint: %v", err)
	}

	return summary{
		Origin:           cp.origin,
		TreeSize:         tree.N,
		Root:             base64.StdEncoding.EncodeToString(tree.Hash[:]),
		Entries:          entries,
		InclusionProofs:  inclusion,
		ConsistencyProof: consistency,
		Requests:         c.requests,
		Client:           "golang.org/x/mod/sumdb/{note,tlog}",
	}, nil
}

func main() {
	server := flag.String("server", "", "the server, http://host:port")
	tokenFile := flag.String("token-file", "", "a file holding an auditor token")
	key := flag.String("key", "", "the log's verifier key, name+keyid+base64")
	flag.Parse()
	if *server == "" || *tokenFile == "" || *key == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: tlog-go-check -server URL -token-file FILE -key KEY")
		os.Exit(2)
	}
	token, err := os.ReadFile(*tokenFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlog-go-check: %v\n", err)
		os.Exit(2)
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(*key))
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlog-go-check: -key: %v\n", err)
		os.Exit(2)
	}
	c := &client{
		base:  strings.TrimRight(*server, "/"),
		token: string(bytes.TrimSpace(token)),
		http:  &http.Client{},
	}
	s, err := check(c, verifier)
	if errors.Is(err, errUsage) {
		fmt.Fprintf(os.Stderr, "tlog-go-check: %v\n", err)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlog-go-check: DOES NOT VERIFY: %v\n", err)
		os.Exit(1)
	}
	out, _ := json.MarshalIndent(s, "", "  ")
	fmt.Println(string(out))
}
