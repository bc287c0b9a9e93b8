package ipc

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// spareEnd makes a socketpair and returns the parent's Conn and the
// spare's end as a raw blocking descriptor, as a spare inherits it.
func spareEnd(t *testing.T) (*Conn, int) {
	t.Helper()
	parentEnd, childEnd, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(childEnd.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	childEnd.Close()
	t.Cleanup(func() { parentEnd.Close(); unix.Close(fd) })
	return parentEnd, fd
}

func TestHandoffCarriesTheClientSocket(t *testing.T) {
	parentEnd, fd := spareEnd(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dialed, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer dialed.Close()
	accepted, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	f, err := accepted.(*net.TCPConn).File()
	accepted.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := Handoff{ClientAddr: dialed.LocalAddr().String(), Transport: TransportWSS, LogLevel: "debug", Accepted: time.Now().Round(0)}
	if err := parentEnd.SendHandoff(want, f); err != nil {
		t.Fatal(err)
	}
	f.Close() // the spare has its own copy now

	got, clientFD, err := ReceiveHandoff(fd)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Accepted.Equal(want.Accepted) || got.ClientAddr != want.ClientAddr || got.Transport != want.Transport || got.LogLevel != want.LogLevel {
		t.Errorf("handoff %+v, want %+v", got, want)
	}
	if flags, err := unix.FcntlInt(uintptr(clientFD), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received descriptor is not close-on-exec (flags %#x, %v)", flags, err)
	}
	clientFile := os.NewFile(uintptr(clientFD), "client")
	client, err := net.FileConn(clientFile) // dups clientFD
	clientFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(dialed, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("the client read %q, %v through the handed-off socket", buf, err)
	}

	cfg := want.Apply(ChildConfig{Spare: true, TLSCertFile: "c", TLSKeyFile: "k", LogLevel: "info"})
	if cfg.ClientAddr != want.ClientAddr || cfg.LogLevel != "debug" || cfg.TLSCertFile != "c" {
		t.Errorf("Apply gave %+v", cfg)
	}
	if plain := (Handoff{}).Apply(cfg); plain.TLSCertFile != "" || plain.TLSKeyFile != "" {
		t.Errorf("Apply of a plain client kept the TLS files: %+v", plain)
	}
}

func TestHandoffRefusesOtherPackets(t *testing.T) {
	t.Run("EOF", func(t *testing.T) {
		parentEnd, fd := spareEnd(t)
		parentEnd.Close()
		if _, _, err := ReceiveHandoff(fd); !errors.Is(err, io.EOF) {
			t.Fatalf("err %v, want io.EOF", err)
		}
	})
	t.Run("a batch", func(t *testing.T) {
		parentEnd, fd := spareEnd(t)
		if err := parentEnd.WriteBatch(AppendText(nil, KindShutdown, "bye")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ReceiveHandoff(fd); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err %v, want ErrMalformed", err)
		}
	})
}
