// Package cluster lets several Gatehouse instances act as one edge by
// sharing state through one Redis or Valkey server (github.com/redis/go-redis/v9
// speaks to both): ACME certificates, bans and the budgets of rate-limit
// zones of scope "cluster". There is no replication between instances:
// every instance talks to Redis only.
//
// A [Node] is one instance's membership: the client, its heartbeats (by
// which every instance counts the live ones) and a circuit breaker that
// keeps requests off a Redis that is failing. From it come:
//
//   - [Limiter], a [ratelimit.SharedLimiter]: GCRA in Redis through
//     github.com/go-redis/redis_rate, every zone of a request in one
//     pipelined round trip, bounded by a latency budget; when Redis is
//     slow or down a request is decided by a local bucket at the zone's
//     rate divided by the live instances, and the fallback is counted.
//   - [Bans], a [ratelimit.JailPeers]: bans, unbans and strikes go to a
//     Redis hash (the last change of a key wins) and out on pub/sub;
//     a version counter polled every ban_sync repairs what pub/sub
//     missed. Changes made while Redis is unreachable wait in a journal
//     and go out when it is back.
//   - [Storage], a certmagic.Storage: certificates, accounts, challenge
//     tokens and locks in Redis (locks expire unless their holder
//     refreshes them), with every value also kept in a local directory so
//     that an instance restarts and serves TLS while Redis is down.
//
// The package imports ratelimit and certmagic; nothing here knows HTTP
// requests (package proxy asks the Limiter), and cmd/gatehouse wires it.
// Every goroutine is owned by a Run method or by a held lock, and ends with
// its context or Unlock.
package cluster
