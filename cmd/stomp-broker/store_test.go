package main

import "testing"

func TestRedactDSN(t *testing.T) {
	cases := []struct{ in, want string }{
		{"sqlite:/var/lib/b.db", "sqlite:/var/lib/b.db"},
		{"postgres://broker@db/jobs", "postgres://broker@db/jobs"},
		{"postgres://broker:s3cret@db/jobs", "postgres://broker:xxx@db/jobs"},
		{"theschwartz:postgres://w:pw@db/ts", "theschwartz:postgres://w:xxx@db/ts"},
		{"theschwartz:sqlite:/tmp/ts.db", "theschwartz:sqlite:/tmp/ts.db"},
	}
	for _, c := range cases {
		if got := redactDSN(c.in); got != c.want {
			t.Errorf("redactDSN(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
