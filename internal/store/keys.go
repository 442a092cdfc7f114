package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// Every key of the table is built here, so the whole design reads as one table of access
// patterns (docs/architecture.md explains it). Everything but a credential lookup, the due index
// and the list of tenants being deleted starts from the tenant.
//
//	item              PK                    SK                  GSI1 PK / SK                          GSI2 PK / SK                         GSI3 PK / SK
//	tenant            TENANT#t              META                TENANTS#DELETING / TENANT#t (while being deleted)
//	API key           APIKEY#k              META                TENANT#t#APIKEYS / APIKEY#k
//	enrollment token  ENROLL#e              META                TENANT#t#ENROLL / ENROLL#e
//	agent credential  AGENTCRED#a           META
//	agent             TENANT#t              AGENT#a                                                   DUE#shard / silentAt#AGENT#t#a (while online)
//	agent capacity    TENANT#t              CAPACITY#a          (the agent's active tasks and backoff; capacity.go)
//	repository        TENANT#t              REPO#name
//	policy            TENANT#t              POLICY#p
//	policy name guard TENANT#t              POLICYNAME#name
//	assignment        TENANT#t#POLICY#p     AGENT#a             TENANT#t#AGENT#a#POLICIES / POLICY#p
//	slot              TENANT#t#POLICY#p     SLOT#a#kind         TENANT#t#OVERDUE / SLOT#p#a (overdue backups)  DUE#shard / due#SLOT#t#p#a#kind
//	overdue check     TENANT#t#POLICY#p     OVERDUE#a#kind                                            DUE#shard / checkAt#OVERDUE#t#p#a#kind
//	task              TENANT#t              TASK#id             TENANT#t#AGENT#a#TASKS / TASK#id      DUE#shard / due#TASK#t#id            TENANT#t#AGENT#a#ACTIVE / TASK#id
//	run               TENANT#t              RUN#id              TENANT#t#AGENT#a#RUNS / RUN#id        TENANT#t#POLICY#p#RUNS / RUN#id
//	log chunk         TENANT#t#RUN#r        LOG#seq
//	snapshot          TENANT#t#AGENT#a      SNAP#time#id
//	listing           TENANT#t#AGENT#a      LISTING#snapshotId  (the snapshot's current tree listing, pointing at its run; TTL)
//	listing upload    TENANT#t#AGENT#a      LISTRUN#runId       (an ls run's counters while it uploads; TTL)
//	directory chunk   TENANT#t#RUN#r        DIR#hash#k#seq      (entries of one directory, gzip JSON; k 0 subdirectories, 1 the rest; TTL; listings.go)
//	retry budget      TENANT#t#AGENT#a      RETRIES#hour        (one per agent and hour; TTL a day later)
//	agent counters    TENANT#t              COUNTS#AGENTS       (counters.go explains the counters)
//	overdue counter   TENANT#t              COUNTS#OVERDUE
//	run counters      TENANT#t              COUNTS#RUNS#hour    (one per tenant and hour; TTL two days later)
//	repository health TENANT#t              HEALTH#repo                                               DUE#shard / overdueAt#HEALTH#t#repo (until its check is announced overdue; health.go)
//	health history    TENANT#t              HEALTHDAY#repo#date (one per UTC day; TTL 90 days)
//	outbox event      TENANT#t              OUTBOX#eventId                                            DUE#shard / eventTime#OUTBOX#t#eventId (until published; outbox.go)
//	channel           TENANT#t              CHANNEL#c           (a notification channel; its sealed secret beside it)
//	delivery          TENANT#t#CHANNEL#c    DELIVERY#id         (the channel's delivery log; TTL 30 days)
//	sent event        TENANT#t#CHANNEL#c    EVENT#id            (an event claimed or sent, for dedupe; TTL 2 days)
//	failure streak    TENANT#t#CHANNEL#c    STREAK#subject      (while a policy×agent or agent fails, for quiet mode)
//	confirmation      TENANT#t#CHANNEL#c    CONFIRM#hash        (an email confirmation link's token hash; TTL 7 days)
//	audit entry       TENANT#t              AUDIT#id            TENANT#t#AUDIT#RES#type#id / AUDIT#id  TENANT#t#AUDIT#RES#type / AUDIT#id   TENANT#t#AUDIT#ACTOR#a / AUDIT#id (TTL: retention)

const (
	skMeta          = "META"
	prefixAgent     = "AGENT#"
	prefixCapacity  = "CAPACITY#"
	prefixRepo      = "REPO#"
	prefixPolicy    = "POLICY#"
	prefixTask      = "TASK#"
	prefixRun       = "RUN#"
	prefixSlot      = "SLOT#"
	prefixLog       = "LOG#"
	prefixSnap      = "SNAP#"
	prefixAPIKey    = "APIKEY#"
	prefixEnroll    = "ENROLL#"
	prefixAgentCred = "AGENTCRED#"
	prefixDue       = "DUE#"
	prefixOverdue   = "OVERDUE#"
	prefixChannel   = "CHANNEL#"
	prefixDelivery  = "DELIVERY#"
	prefixEvent     = "EVENT#"
	prefixStreak    = "STREAK#"
	prefixConfirm   = "CONFIRM#"
	prefixAudit     = "AUDIT#"
	prefixHealth    = "HEALTH#"
	prefixHealthDay = "HEALTHDAY#"
	prefixListing   = "LISTING#"
	prefixDirChunk  = "DIR#"
)

// Item types, stored in every item's "entity" attribute so mixed queries (the due index) can
// tell items apart.
const (
	entityTenant     = "tenant"
	entityAPIKey     = "apikey"
	entityEnroll     = "enrollment"
	entityAgentCred  = "agentcred"
	entityAgent      = "agent"
	entityCapacity   = "capacity"
	entityRepository = "repository"
	entityPolicy     = "policy"
	entityPolicyName = "policyname"
	entityAssignment = "assignment"
	entitySlot       = "slot"
	entityOverdue    = "overduecheck"
	entityTask       = "task"
	entityRun        = "run"
	entityLog        = "log"
	entitySnapshot   = "snapshot"
	entityRetries    = "retries"
	entityOutbox     = "outbox"
	entityChannel    = "channel"
	entityDelivery   = "delivery"
	entitySentEvent  = "sentevent"
	entityStreak     = "streak"
	entityConfirm    = "confirmation"
	entityAudit      = "audit"
	entityHealth     = "health"
	entityHealthDay  = "healthday"
	entityListing    = "listing"
	entityListRun    = "listingupload"
	entityDirChunk   = "dirchunk"
)

// key is the primary key of one item.
type key struct {
	PK string `json:"PK"`
	SK string `json:"SK"`
}

func tenantPK(t string) string { return "TENANT#" + t }

func tenantKey(t string) key                        { return key{tenantPK(t), skMeta} }
func apiKeyKey(k string) key                        { return key{prefixAPIKey + k, skMeta} }
func enrollKey(e string) key                        { return key{prefixEnroll + e, skMeta} }
func agentCredKey(a string) key                     { return key{prefixAgentCred + a, skMeta} }
func agentKey(t, a string) key                      { return key{tenantPK(t), prefixAgent + a} }
func capacityKey(t, a string) key                   { return key{tenantPK(t), prefixCapacity + a} }
func repoKey(t, name string) key                    { return key{tenantPK(t), prefixRepo + name} }
func policyKey(t, p string) key                     { return key{tenantPK(t), prefixPolicy + p} }
func policyNameKey(t, name string) key              { return key{tenantPK(t), "POLICYNAME#" + name} }
func assignmentKey(t, p, a string) key              { return key{policyPK(t, p), prefixAgent + a} }
func slotKey(t, p, a string, k domain.SlotKind) key { return key{policyPK(t, p), slotSK(a, k)} }
func taskKey(t, id string) key                      { return key{tenantPK(t), prefixTask + id} }
func runKey(t, id string) key                       { return key{tenantPK(t), prefixRun + id} }
func logKey(t, run string, seq int64) key           { return key{runPK(t, run), logSK(seq)} }
func retryBudgetKey(t, a string, hour time.Time) key {
	return key{agentPK(t, a), "RETRIES#" + hour.UTC().Format("2006-01-02T15")}
}
func snapshotKey(t, a string, at time.Time, id string) key {
	return key{agentPK(t, a), prefixSnap + fmtTime(at) + "#" + id}
}
func listingKey(t, a, snap string) key   { return key{agentPK(t, a), prefixListing + snap} }
func listingRunKey(t, a, run string) key { return key{agentPK(t, a), "LISTRUN#" + run} }
func dirChunkKey(t, run, dir string, dirs bool, seq int) key {
	return key{runPK(t, run), dirChunkSK(dir, dirs, seq)}
}

// dirChunkPrefix is the start of every chunk key of one directory. The directory is hashed: a
// path may be longer than a sort key, and may hold "#".
func dirChunkPrefix(dir string) string {
	h := sha256.Sum256([]byte(dir))
	return prefixDirChunk + hex.EncodeToString(h[:16]) + "#"
}

// dirChunkSK orders a directory's chunks: its subdirectories' chunks (0) before the rest (1),
// each by number.
func dirChunkSK(dir string, dirs bool, seq int) string {
	kind := "1"
	if dirs {
		kind = "0"
	}
	return fmt.Sprintf("%s%s#%05d", dirChunkPrefix(dir), kind, seq)
}

func overdueCheckKey(t, p, a string, k domain.SlotKind) key {
	return key{policyPK(t, p), prefixOverdue + a + "#" + string(k)}
}

func auditKey(t, id string) key { return key{tenantPK(t), prefixAudit + id} }

// An audit entry is listed by resource, by resource type and by actor through the three indexes.
func auditResourceGSI1(t, typ, id string) string { return tenantPK(t) + "#AUDIT#RES#" + typ + "#" + id }
func auditTypeGSI2(t, typ string) string         { return tenantPK(t) + "#AUDIT#RES#" + typ }
func auditActorGSI3(t, actor string) string      { return tenantPK(t) + "#AUDIT#ACTOR#" + actor }
func healthKey(t, repo string) key               { return key{tenantPK(t), prefixHealth + repo} }
func healthDayKey(t, repo, date string) key {
	return key{tenantPK(t), prefixHealthDay + repo + "#" + date}
}

func channelKey(t, c string) key      { return key{tenantPK(t), prefixChannel + c} }
func deliveryKey(t, c, id string) key { return key{channelPK(t, c), prefixDelivery + id} }
func channelPK(t, c string) string    { return tenantPK(t) + "#CHANNEL#" + c }

func policyPK(t, p string) string { return tenantPK(t) + "#POLICY#" + p }
func agentPK(t, a string) string  { return tenantPK(t) + "#AGENT#" + a }
func runPK(t, r string) string    { return tenantPK(t) + "#RUN#" + r }

func slotSK(a string, k domain.SlotKind) string { return prefixSlot + a + "#" + string(k) }
func logSK(seq int64) string                    { return fmt.Sprintf("%s%010d", prefixLog, seq) }

// overdueSlotGSI1SK orders a tenant's overdue slots by policy, then agent.
func overdueSlotGSI1SK(p, a string) string { return prefixSlot + p + "#" + a }

// Secondary index partitions.
func tenantAPIKeysGSI1(t string) string    { return tenantPK(t) + "#APIKEYS" }
func tenantEnrollGSI1(t string) string     { return tenantPK(t) + "#ENROLL" }
func agentPoliciesGSI1(t, a string) string { return agentPK(t, a) + "#POLICIES" }
func agentTasksGSI1(t, a string) string    { return agentPK(t, a) + "#TASKS" }
func agentRunsGSI1(t, a string) string     { return agentPK(t, a) + "#RUNS" }
func policyRunsGSI2(t, p string) string    { return policyPK(t, p) + "#RUNS" }
func agentActiveGSI3(t, a string) string   { return agentPK(t, a) + "#ACTIVE" }
func tenantOverdueGSI1(t string) string    { return tenantPK(t) + "#OVERDUE" }
func dueGSI2(shard int) string             { return fmt.Sprintf("%s%d", prefixDue, shard) }

// deletingTenantsGSI1 lists the tenants being deleted, for the scheduler to carry on with; it
// spans tenants, as the due index does.
const deletingTenantsGSI1 = "TENANTS#DELETING"

// timeLayout is RFC 3339 in UTC with a fixed width, so that string order is time order.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// dueSK orders due-index entries by the time they need the scheduler; the rest makes it unique.
func dueSK(at time.Time, rest string) string { return fmtTime(at) + "#" + rest }

func slotDueSK(t, p, a string, k domain.SlotKind, at time.Time) string {
	return dueSK(at, "SLOT#"+t+"#"+p+"#"+a+"#"+string(k))
}

func overdueCheckDueSK(t, p, a string, k domain.SlotKind, at time.Time) string {
	return dueSK(at, prefixOverdue+t+"#"+p+"#"+a+"#"+string(k))
}

func taskDueSK(t, id string, at time.Time) string { return dueSK(at, "TASK#"+t+"#"+id) }

func agentDueSK(t, a string, at time.Time) string { return dueSK(at, "AGENT#"+t+"#"+a) }

// shardOf spreads due-index entries of one tenant's policy over the shards.
func shardOf(parts ...string) int {
	h := fnv.New32a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
	}
	return int(h.Sum32() % resources.DueShards)
}
