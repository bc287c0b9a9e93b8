package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procRoot is where the proc filesystem is mounted; tests point the
// functions below at a fake tree instead.
const procRoot = "/proc"

// errNoPss is returned by parsePss for a text without a "Pss:" line.
var errNoPss = errors.New("stomp-bench: no Pss line in smaps_rollup")

// pssSample is the proportional set size of a process tree: the broker
// parent and, in a fork-per-client broker, one child per client.
type pssSample struct {
	KiB   int64 // summed Pss
	Procs int   // processes that contributed
}

// parsePss returns the "Pss:" value of a /proc/<pid>/smaps_rollup text, in
// KiB (the kernel writes "Pss:   1234 kB"). The Pss_Anon, Pss_File and
// Pss_Shmem break-down lines are not the total and are skipped.
func parsePss(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "Pss:" {
			continue
		}
		if len(fields) != 3 || fields[2] != "kB" {
			return 0, fmt.Errorf("parse Pss line %q: want \"Pss: <n> kB\"", sc.Text())
		}
		kib, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse Pss line %q: %w", sc.Text(), err)
		}
		return kib, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read smaps_rollup: %w", err)
	}
	return 0, errNoPss
}

// childrenOf returns the children of pid as listed in
// <root>/<pid>/task/<tid>/children, over all of pid's threads (a child
// belongs to the thread that forked it).
func childrenOf(root string, pid int) ([]int, error) {
	files, err := filepath.Glob(filepath.Join(root, strconv.Itoa(pid), "task", "*", "children"))
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, name := range files {
		data, err := os.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread exited meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		for _, f := range strings.Fields(string(data)) {
			kid, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", name, err)
			}
			kids = append(kids, kid)
		}
	}
	return kids, nil
}

// processTree returns pid followed by all of its descendants (breadth
// first, each once). It fails only if pid itself does not exist.
func processTree(root string, pid int) ([]int, error) {
	if _, err := os.Stat(filepath.Join(root, strconv.Itoa(pid))); err != nil {
		return nil, fmt.Errorf("broker process %d: %w", pid, err)
	}
	seen := map[int]bool{pid: true}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		kids, err := childrenOf(root, tree[i])
		if err != nil {
			return nil, err
		}
		for _, k := range kids {
			if !seen[k] {
				seen[k] = true
				tree = append(tree, k)
			}
		}
	}
	return tree, nil
}

// treePss sums the Pss of pid and all its descendants. Descendants that
// exit between listing and reading are skipped; a failure to read pid's own
// smaps_rollup (gone, or not permitted) is an error.
func treePss(root string, pid int) (pssSample, error) {
	tree, err := processTree(root, pid)
	if err != nil {
		return pssSample{}, err
	}
	var s pssSample
	for _, p := range tree {
		kib, err := readPss(filepath.Join(root, strconv.Itoa(p), "smaps_rollup"))
		if err != nil {
			if p != pid && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return pssSample{}, fmt.Errorf("process %d: %w", p, err)
		}
		s.KiB += kib
		s.Procs++
	}
	return s, nil
}

// readPss opens one smaps_rollup file and parses it.
func readPss(name string) (int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parsePss(f)
}
