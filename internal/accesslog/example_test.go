package accesslog_test

import (
	"os"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/accesslog"
)

func Example() {
	logs := accesslog.New()
	logs.Stdout = os.Stdout
	defer logs.Close()
	l, err := logs.Open("stdout", "combined")
	if err != nil {
		panic(err)
	}
	l.Write(&accesslog.Entry{
		Start:     time.Date(2026, 12, 5, 11, 30, 0, 0, time.UTC),
		Client:    "192.0.2.7",
		Method:    "GET",
		URI:       "/a\"b",
		Proto:     "HTTP/1.1",
		Status:    200,
		Bytes:     512,
		UserAgent: "curl/8.5",
	})
	// Output:
	// 192.0.2.7 - - [05/Dec/2026:11:30:00 +0000] "GET /a\x22b HTTP/1.1" 200 512 "-" "curl/8.5"
}
