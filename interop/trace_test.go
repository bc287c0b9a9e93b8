package interop

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// startTraceProxy puts a recording TCP proxy in front of upstream and returns
// the proxy's address. Every frame that passes is logged through t.Log as its
// command and raw header lines, quoted, so escaping is visible exactly as it
// was on the wire ("C>" client to broker, "S<" broker to client). Bodies are
// not logged. It is a diagnostic (STOMP_INTEROP_TRACE=1): the bytes are
// forwarded untouched, and a frame it cannot parse is only logged less well.
// The proxy and all its connections are closed by t.Cleanup.
func startTraceProxy(t *testing.T, upstream string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("trace proxy: listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  bool
		wg    sync.WaitGroup
	)
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Logf(format, args...)
		}
	}
	track := func(c net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		conns = append(conns, c)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.DialTimeout("tcp", upstream, 5*time.Second)
			if err != nil {
				logf("trace conn%d: dial %s: %v", n, upstream, err)
				c.Close()
				continue
			}
			track(c)
			track(u)
			tag := "conn" + strconv.Itoa(n)
			wg.Add(2)
			go func() { defer wg.Done(); tracePipe(u, c, tag+" C>", logf) }()
			go func() { defer wg.Done(); tracePipe(c, u, tag+" S<", logf) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		mu.Lock()
		done = true
		mu.Unlock()
	})
	return ln.Addr().String()
}

// tracePipe copies src to dst, logging each complete frame head; when either
// side ends it closes dst for writing so the other direction finishes too.
func tracePipe(dst, src net.Conn, tag string, logf func(string, ...any)) {
	var pending []byte
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
			pending = append(pending, buf[:n]...)
			for {
				head, rest, ok := cutFrame(pending)
				if !ok {
					break
				}
				if len(head) > 0 {
					logf("trace %s %q", tag, head)
				}
				pending = rest
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				logf("trace %s read: %v", tag, err)
			}
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// cutFrame splits one frame off the front of b. It returns the frame's head
// (command and header lines, without the blank line), the bytes after the
// frame's NUL, and ok=false when b does not yet hold a whole frame. Leading
// EOLs (heart-beats) yield an empty head.
func cutFrame(b []byte) (head, rest []byte, ok bool) {
	trimmed := bytes.TrimLeft(b, "\r\n")
	if len(trimmed) == 0 {
		return nil, nil, len(b) > 0
	}
	if len(trimmed) < len(b) {
		return nil, trimmed, true
	}
	end, sep := bytes.Index(b, []byte("\n\n")), 2
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 && (end < 0 || i < end) {
		end, sep = i, 4
	}
	if end < 0 {
		return nil, nil, false
	}
	head, body := b[:end], b[end+sep:]
	if cl, found := headerValue(head, "content-length"); found {
		n, err := strconv.Atoi(cl)
		if err == nil && n >= 0 {
			if len(body) < n+1 {
				return nil, nil, false
			}
			return head, body[n+1:], true
		}
	}
	nul := bytes.IndexByte(body, 0)
	if nul < 0 {
		return nil, nil, false
	}
	return head, body[nul+1:], true
}

// headerValue returns the first value of header name in a frame head.
func headerValue(head []byte, name string) (string, bool) {
	lines := bytes.Split(head, []byte("\n"))
	for _, l := range lines[1:] {
		l = bytes.TrimSuffix(l, []byte("\r"))
		k, v, found := bytes.Cut(l, []byte(":"))
		if found && string(k) == name {
			return string(v), true
		}
	}
	return "", false
}

func TestCutFrame(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantHead string
		wantRest string
		wantOK   bool
	}{
		{"whole frame", "SEND\ndestination:/q/a\n\nhi\x00MORE", "SEND\ndestination:/q/a", "MORE", true},
		{"incomplete head", "SEND\ndestination:/q", "", "", false},
		{"incomplete body", "SEND\n\nhi", "", "", false},
		{"heart-beat", "\n\nSEND", "", "SEND", true},
		{"content-length with NUL in body", "MESSAGE\ncontent-length:3\n\na\x00b\x00X", "MESSAGE\ncontent-length:3", "X", true},
		{"content-length not all there", "MESSAGE\ncontent-length:3\n\na\x00", "", "", false},
		{"CRLF head", "CONNECTED\r\nversion:1.2\r\n\r\n\x00", "CONNECTED\r\nversion:1.2", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head, rest, ok := cutFrame([]byte(tt.in))
			if ok != tt.wantOK || string(head) != tt.wantHead || string(rest) != tt.wantRest {
				t.Errorf("cutFrame(%q) = %q, %q, %v; want %q, %q, %v",
					tt.in, head, rest, ok, tt.wantHead, tt.wantRest, tt.wantOK)
			}
		})
	}
}
