// Package userfile reads the broker's --users file: one
// "login:bcrypt-hash" line per user, or "login:bcrypt-hash:admin" for a
// user who may also act in the web console (disconnect a client); blank
// lines and lines starting with '#' are ignored. It reports every bad line by file and line number, so
// the broker can refuse a file it would otherwise accept and then deny
// everyone with.
package userfile

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// bcryptLen is the length of every bcrypt hash ($2a$10$ + 53 characters).
const bcryptLen = 60

// File is a read users file.
type File struct {
	// Users maps each login on a good line to its bcrypt hash (the first
	// line wins for a login given twice).
	Users map[string][]byte
	// Admins holds the logins of good lines ending in ":admin".
	Admins map[string]bool
	// Problems holds one error per bad line, "PATH:LINE: what is wrong".
	Problems []error
}

// Err returns every problem as one error (nil if there is none).
func (f *File) Err() error { return errors.Join(f.Problems...) }

// Read reads and checks the users file at path. The error is for a file
// that cannot be read at all; bad lines are in Problems.
func Read(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	defer fh.Close()
	f := &File{Users: map[string][]byte{}, Admins: map[string]bool{}}
	firstLine := map[string]int{}
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, args ...any) {
			f.Problems = append(f.Problems, fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, args...)))
		}
		login, hash, ok := strings.Cut(line, ":")
		// A bcrypt hash holds no ':', so a third field is unambiguous.
		hash, flag, flagged := strings.Cut(hash, ":")
		switch {
		case !ok || login == "":
			bad("want \"login:bcrypt-hash\" (made by `stomp-broker passwd LOGIN`)")
		case strings.ContainsAny(login, " \t"):
			bad("login %q holds white space", login)
		case !isBcrypt(hash):
			bad("the hash of %q is not a bcrypt hash (want $2a$, $2b$ or $2y$ and 60 characters; make one with `stomp-broker passwd %s`)", login, login)
		case flagged && flag != adminFlag:
			bad("unknown flag %q after the hash of %q (the only flag is %q)", flag, login, adminFlag)
		case firstLine[login] != 0:
			bad("login %q again (first on line %d)", login, firstLine[login])
		default:
			firstLine[login] = n
			f.Users[login] = []byte(hash)
			if flagged {
				f.Admins[login] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	return f, nil
}

// adminFlag is the third field of an admin's line.
const adminFlag = "admin"

// unknownHash is compared against for a login the file does not hold, so
// the time a refusal takes does not tell which logins exist.
var unknownHash = []byte("$2a$10$0000000000000000000000000000000000000000000000000000.")

// Check reports whether passcode is login's (bcrypt). It takes about as
// long for an unknown or empty login, which it always refuses. The STOMP
// CONNECT check (in the child) and the web console's basic auth both use
// it.
func (f *File) Check(login, passcode string) bool {
	hash := f.Users[login]
	if hash == nil {
		hash = unknownHash
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(passcode)) == nil && login != ""
}

func isBcrypt(hash string) bool {
	if len(hash) != bcryptLen {
		return false
	}
	_, err := bcrypt.Cost([]byte(hash))
	return err == nil
}
