package masterkey_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/liaisonhq/liaison/masterkey"
)

func Example() {
	dir, _ := os.MkdirTemp("", "masterkey")
	defer os.RemoveAll(dir)
	k, created, _, err := masterkey.LoadOrCreate(filepath.Join(dir, "app.db.key"))
	if err != nil {
		panic(err)
	}
	sealed := k.Seal("signing_seed", []byte("0123456789abcdef0123456789abcdef"))
	// ... store sealed in the database; later:
	seed, err := k.Open("signing_seed", sealed)
	fmt.Println(created, len(seed), err)
	// Output: true 32 <nil>
}

func ExampleRestrict() {
	dir, _ := os.MkdirTemp("", "masterkey")
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "app.db")
	// Before the database library opens (and creates) it: 0600 whatever
	// the umask.
	if err := masterkey.CreatePrivate(db); err != nil {
		panic(err)
	}
	_ = os.Chmod(db, 0o644) // as an older version or a careless copy left it
	tightened, err := masterkey.Restrict(db)
	fi, _ := os.Stat(db)
	fmt.Println(tightened, err, fi.Mode().Perm())
	// Output: true <nil> -rw-------
}
