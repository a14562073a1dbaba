// Command verify_tlog checks BFA Ledger proofs with Go's own transparency-log
// packages, golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog, given
// nothing but the ledger's verifier key.
//
//	verify_tlog inclusion VKEY PROOF_FILE
//	verify_tlog consistency VKEY OLD_NOTE NEW_NOTE PROOF_FILE
//
// PROOF_FILE for inclusion is a c2sp.org/tlog-proof@v1; for consistency it is a
// c2sp.org/tlog-witness add-checkpoint body ("old N", proof hashes, blank line,
// signed checkpoint). Notes are c2sp.org/tlog-checkpoint signed notes.
//
// It prints "ok ..." and exits 0 when the proof verifies; otherwise it prints
// the error on stderr and exits 1 (2 for usage errors).
//
// Built in GOPATH mode against Debian's golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o verify_tlog verify_tlog.go
package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// checkpoint is the body of a c2sp.org/tlog-checkpoint: origin, size, root hash
// and any extension lines (which are ignored, as the spec allows).
type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "verify_tlog:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

func run(args []string) error {
	if len(args) == 0 {
		return usageError("usage: verify_tlog inclusion VKEY PROOF_FILE | consistency VKEY OLD_NOTE NEW_NOTE PROOF_FILE")
	}
	switch args[0] {
	case "inclusion":
		if len(args) != 3 {
			return usageError("usage: verify_tlog inclusion VKEY PROOF_FILE")
		}
		return inclusion(args[1], args[2])
	case "consistency":
		if len(args) != 5 {
			return usageError("usage: verify_tlog consistency VKEY OLD_NOTE NEW_NOTE PROOF_FILE")
		}
		return consistency(args[1], args[2], args[3], args[4])
	}
	return usageError("unknown subcommand " + strconv.Quote(args[0]))
}

// readVKey accepts the key itself or the path of a file holding it.
func readVKey(arg string) (note.Verifiers, error) {
	vkey := arg
	if data, err := os.ReadFile(arg); err == nil {
		vkey = strings.TrimSpace(string(data))
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	return note.VerifierList(v), nil
}

// openCheckpoint verifies the note's signature with note.Open and parses its text.
func openCheckpoint(msg []byte, known note.Verifiers, what string) (checkpoint, error) {
	n, err := note.Open(msg, known)
	if err != nil {
		return checkpoint{}, fmt.Errorf("%s: note.Open: %w", what, err)
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return checkpoint{}, fmt.Errorf("%s: %w", what, err)
	}
	// A tlog client pins the origin to the log's key; ours share one name.
	if len(n.Sigs) == 0 || n.Sigs[0].Name != cp.origin {
		return checkpoint{}, fmt.Errorf("%s: origin %q is not the signer's name", what, cp.origin)
	}
	return cp, nil
}

// parseCheckpoint parses tlog-checkpoint note text: origin, decimal size, base64 root.
func parseCheckpoint(text string) (checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 {
		return checkpoint{}, errors.New("checkpoint: expected origin, size and root lines")
	}
	origin := lines[0]
	if origin == "" {
		return checkpoint{}, errors.New("checkpoint: empty origin line")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return checkpoint{}, fmt.Errorf("checkpoint: bad tree size %q", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint: bad root hash %q", lines[2])
	}
	// lines[3] holds the optional extension lines, ignored.
	return checkpoint{origin, size, root}, nil
}

func parseHash(line string, lineno int) (tlog.Hash, error) {
	h, err := tlog.ParseHash(line)
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("proof line %d: bad hash %q", lineno, line)
	}
	return h, nil
}

// splitLines cuts text into its newline-terminated lines up to the first empty
// line, returning those lines and the rest (the checkpoint note).
func splitLines(data []byte) ([]string, []byte, error) {
	var lines []string
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return nil, nil, errors.New("proof: no empty line before the checkpoint")
		}
		line := string(data[:i])
		data = data[i+1:]
		if line == "" {
			return lines, data, nil
		}
		lines = append(lines, line)
	}
}

func inclusion(vkey, proofFile string) error {
	known, err := readVKey(vkey)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(proofFile)
	if err != nil {
		return err
	}
	lines, notePart, err := splitLines(data)
	if err != nil {
		return err
	}
	if len(lines) < 2 || lines[0] != "c2sp.org/tlog-proof@v1" {
		return errors.New("proof: expected first line c2sp.org/tlog-proof@v1")
	}
	k := 1
	var extra []byte
	if strings.HasPrefix(lines[k], "extra ") {
		extra, err = base64.StdEncoding.Strict().DecodeString(lines[k][len("extra "):])
		if err != nil {
			return fmt.Errorf("proof line %d: bad extra: %w", k+1, err)
		}
		k++
	}
	if extra == nil {
		return errors.New("proof: no extra line carrying the leaf bytes")
	}
	if k >= len(lines) || !strings.HasPrefix(lines[k], "index ") {
		return fmt.Errorf("proof line %d: expected index line", k+1)
	}
	indexText := lines[k][len("index "):]
	index, err := strconv.ParseInt(indexText, 10, 64)
	if err != nil || index < 0 || strconv.FormatInt(index, 10) != indexText {
		return fmt.Errorf("proof line %d: bad index %q", k+1, indexText)
	}
	k++
	var proof tlog.RecordProof
	for ; k < len(lines); k++ {
		h, err := parseHash(lines[k], k+1)
		if err != nil {
			return err
		}
		proof = append(proof, h)
	}
	cp, err := openCheckpoint(notePart, known, "checkpoint")
	if err != nil {
		return err
	}
	if index >= cp.size {
		return fmt.Errorf("index %d is outside the tree of size %d", index, cp.size)
	}
	leaf := tlog.RecordHash(extra)
	if err := tlog.CheckRecord(proof, cp.size, cp.root, index, leaf); err != nil {
		return fmt.Errorf("tlog.CheckRecord: %w", err)
	}
	fmt.Printf("ok inclusion origin=%s index=%d size=%d root=%s leaf=%s\n",
		cp.origin, index, cp.size, cp.root, leaf)
	return nil
}

func consistency(vkey, oldFile, newFile, proofFile string) error {
	known, err := readVKey(vkey)
	if err != nil {
		return err
	}
	oldMsg, err := os.ReadFile(oldFile)
	if err != nil {
		return err
	}
	newMsg, err := os.ReadFile(newFile)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(proofFile)
	if err != nil {
		return err
	}
	oldCP, err := openCheckpoint(oldMsg, known, "old checkpoint")
	if err != nil {
		return err
	}
	newCP, err := openCheckpoint(newMsg, known, "new checkpoint")
	if err != nil {
		return err
	}
	if oldCP.origin != newCP.origin {
		return fmt.Errorf("origins differ: %q and %q", oldCP.origin, newCP.origin)
	}
	lines, notePart, err := splitLines(data)
	if err != nil {
		return err
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "old ") {
		return errors.New("proof line 1: expected 'old N'")
	}
	oldText := lines[0][len("old "):]
	oldSize, err := strconv.ParseInt(oldText, 10, 64)
	if err != nil || oldSize < 0 || strconv.FormatInt(oldSize, 10) != oldText {
		return fmt.Errorf("proof line 1: bad old size %q", oldText)
	}
	if oldSize != oldCP.size {
		return fmt.Errorf("proof is from size %d, old checkpoint has size %d", oldSize, oldCP.size)
	}
	var proof tlog.TreeProof
	for k := 1; k < len(lines); k++ {
		h, err := parseHash(lines[k], k+1)
		if err != nil {
			return err
		}
		proof = append(proof, h)
	}
	// The body carries the new checkpoint too: it must be the one we were given.
	bodyCP, err := openCheckpoint(notePart, known, "proof checkpoint")
	if err != nil {
		return err
	}
	if bodyCP != newCP {
		return fmt.Errorf("proof checkpoint (size %d) is not the new checkpoint (size %d)",
			bodyCP.size, newCP.size)
	}
	if err := tlog.CheckTree(proof, newCP.size, newCP.root, oldCP.size, oldCP.root); err != nil {
		return fmt.Errorf("tlog.CheckTree: %w", err)
	}
	fmt.Printf("ok consistency origin=%s old=%d new=%d old_root=%s new_root=%s\n",
		newCP.origin, oldCP.size, newCP.size, oldCP.root, newCP.root)
	return nil
}
