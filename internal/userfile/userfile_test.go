package userfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestRead(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("wonderland"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h := string(hash)
	path := filepath.Join(t.TempDir(), "users")
	content := "# users\n\nalice:" + h + "\n" + // 3
		"garbage\n" + // 4
		"bob:plaintext\n" + // 5
		"alice:" + h + "\n" + // 6
		":" + h + "\n" + // 7
		"carol:" + h[:59] + "\n" + // 8
		"dave:" + h + "\n" // 9
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		path + ":4: want \"login:bcrypt-hash\"",
		path + ":5: the hash of \"bob\" is not a bcrypt hash",
		path + ":6: login \"alice\" again (first on line 3)",
		path + ":7: want \"login:bcrypt-hash\"",
		path + ":8: the hash of \"carol\" is not a bcrypt hash",
	}
	if len(f.Problems) != len(want) {
		t.Fatalf("problems %v, want %d", f.Problems, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(f.Problems[i].Error(), w) {
			t.Errorf("problem %d: %q, want %q...", i, f.Problems[i], w)
		}
	}
	if len(f.Users) != 2 || string(f.Users["alice"]) != h || string(f.Users["dave"]) != h {
		t.Errorf("users %v, want alice and dave", f.Users)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file read without an error")
	}
}

// TestAdminFlag: ":admin" after the hash marks an admin, old two-field
// lines stay valid and non-admin, any other flag is a bad line; Check
// accepts the right passcode of admins and others alike.
func TestAdminFlag(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h := string(hash)
	path := filepath.Join(t.TempDir(), "users")
	content := "root:" + h + ":admin\n" + "alice:" + h + "\n" + "eve:" + h + ":root\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Problems) != 1 || !strings.Contains(f.Problems[0].Error(), `:3: unknown flag "root"`) {
		t.Errorf("problems %v, want one about line 3's flag", f.Problems)
	}
	if !f.Admins["root"] || f.Admins["alice"] || len(f.Admins) != 1 {
		t.Errorf("admins %v, want root only", f.Admins)
	}
	for _, tc := range []struct {
		login, pass string
		want        bool
	}{
		{"root", "pw", true}, {"alice", "pw", true}, {"alice", "wrong", false},
		{"eve", "pw", false}, {"nobody", "pw", false}, {"", "", false},
	} {
		if got := f.Check(tc.login, tc.pass); got != tc.want {
			t.Errorf("Check(%q, %q) = %v, want %v", tc.login, tc.pass, got, tc.want)
		}
	}
}
