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
