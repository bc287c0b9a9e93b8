package child

import (
	"errors"

	"github.com/stomp-broker/stomp-broker/internal/userfile"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// authenticate checks CONNECT's login and passcode against the users file
// (one "login:bcrypt-hash" per line, '#' comments; see internal/userfile;
// bad lines, refused at start, are skipped). Without a users file
// every client is let in. The file is read per CONNECT, in the child, so a
// changed file applies to the next connection without a reload.
func (s *session) authenticate(login, passcode string) error {
	if s.cfg.UsersFile == "" {
		return nil
	}
	f, err := userfile.Read(s.cfg.UsersFile)
	if err != nil {
		s.log.Error("cannot read users file", "err", err)
		return errors.New(stompwire.ErrDetailAuthUnavailable)
	}
	if !f.Check(login, passcode) {
		s.log.Warn("login refused", "login", login) // never the passcode
		return errors.New(stompwire.ErrDetailWrongLogin)
	}
	return nil
}
