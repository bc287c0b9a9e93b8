package child

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// authenticate checks CONNECT's login and passcode against the users file
// (one "login:bcrypt-hash" per line, '#' comments). Without a users file
// every client is let in. The file is read per CONNECT, in the child, so a
// changed file applies to the next connection without a reload.
func (s *session) authenticate(login, passcode string) error {
	if s.cfg.UsersFile == "" {
		return nil
	}
	hash, err := lookupUser(s.cfg.UsersFile, login)
	if err != nil {
		s.log.Error("cannot read users file", "err", err)
		return errors.New(stompwire.ErrDetailAuthUnavailable)
	}
	// Compare even for an unknown login, so timing does not tell which
	// logins exist.
	if hash == nil {
		hash = []byte("$2a$10$0000000000000000000000000000000000000000000000000000.")
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(passcode)) != nil || login == "" {
		return errors.New(stompwire.ErrDetailWrongLogin)
	}
	return nil
}

// lookupUser returns login's hash, or nil if the file has no such login.
func lookupUser(path, login string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if ok && name == login {
			return []byte(hash), nil
		}
	}
	return nil, sc.Err()
}
