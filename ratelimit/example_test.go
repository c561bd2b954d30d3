package ratelimit_test

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// The reference's login zone (5 requests a minute) answering one client
// that tries seven times in a row.
func ExampleZone_AllowAt() {
	z, err := ratelimit.NewZone(ratelimit.ZoneOptions{Name: "login", Rate: 5.0 / 60, Burst: 5})
	if err != nil {
		panic(err)
	}
	client := ratelimit.KeyOf(netip.MustParseAddr("2001:db8:7:1::42"), 64)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := 1; i <= 7; i++ {
		ok, _, retryAfter := z.AllowAt(client, now)
		if ok {
			fmt.Printf("request %d: served\n", i)
			continue
		}
		// A Retry-After header carries whole seconds, rounded up.
		fmt.Printf("request %d: 429, Retry-After: %.0f\n", i, math.Ceil(retryAfter.Seconds()))
	}
	fmt.Println("keyed as", client, "- rejected:", z.Rejected())
	// Output:
	// request 1: served
	// request 2: served
	// request 3: served
	// request 4: served
	// request 5: served
	// request 6: 429, Retry-After: 12
	// request 7: 429, Retry-After: 12
	// keyed as 2001:db8:7:1::/64 - rejected: 2
}

// The fail2ban jail of the reference: ten strikes in ten minutes ban a
// client for two hours.
func ExampleJail() {
	j := ratelimit.NewJail(ratelimit.JailOptions{
		MaxRetry: 10, FindTime: 600 * time.Second, BanTime: 7200 * time.Second,
		OnEvent: func(e ratelimit.Event) {
			fmt.Printf("%s %s (%s) after %d strikes, until %s\n",
				e.Kind, e.Key, e.Reason, e.Strikes, e.Until.Format(time.TimeOnly))
		},
	})
	k := ratelimit.KeyOf(netip.MustParseAddr("203.0.113.9"), 0)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 10 {
		j.RecordAt(k, "401 on /login", now.Add(time.Duration(i)*30*time.Second))
	}
	banned, _ := j.BannedAt(k, now.Add(time.Hour))
	fmt.Println("banned an hour later:", banned)
	// Output:
	// ban 203.0.113.9/32 (401 on /login) after 10 strikes, until 14:04:30
	// banned an hour later: true
}

// An operator's ban on an IPv6 /48 refuses every address inside it, and
// none outside. AddrKey asks about one address, whatever the ban's length.
func ExampleJail_Ban() {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	j := ratelimit.NewJail(ratelimit.JailOptions{Now: func() time.Time { return now }})
	k, err := ratelimit.ParseKey("2001:db8:aa::/48", 64)
	if err != nil {
		panic(err)
	}
	if err := j.Ban(k, 30*24*time.Hour, "hostile network"); err != nil {
		panic(err)
	}
	for _, a := range []string{"2001:db8:aa:1::7", "2001:db8:aa:ffff::1", "2001:db8:ab::1"} {
		banned, _ := j.BannedAt(ratelimit.AddrKey(netip.MustParseAddr(a)), now)
		fmt.Println(a, "banned:", banned)
	}
	// A prefix with bits set past its length is refused, not widened.
	_, err = ratelimit.ParseKey("2001:db8:aa::1/48", 64)
	fmt.Println(err)
	// Output:
	// 2001:db8:aa:1::7 banned: true
	// 2001:db8:aa:ffff::1 banned: true
	// 2001:db8:ab::1 banned: false
	// ratelimit: parse key "2001:db8:aa::1/48": bits are set past the prefix length; the /48 prefix is 2001:db8:aa::/48
}
