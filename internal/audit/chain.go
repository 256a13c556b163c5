package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Chain entry kinds: every store write appends one entry per record.
const (
	EntryBegin   = "begin"   // record inserted (begun or denied)
	EntryFinish  = "finish"  // record completed (or inserted late, fail-open)
	EntryRecover = "recover" // record closed as unfinished after a crash
	EntryContent = "content" // captured content stored (key ContentKey(id))
	EntryPurge   = "purge"   // captured content erased (key ContentKey(id))
)

// ContentKey is the chain key of a request's captured content, so content
// entries never mix with the record's own entries.
func ContentKey(requestID string) string { return "content:" + requestID }

// ChainEntry is one link of a store's hash chain. Payload is the JSON of
// the Record exactly as the store holds it after the write (Seq and Time
// included); the chain commits to those bytes.
type ChainEntry struct {
	Chain     string // chain name: one per writer (SQLite: "main")
	Seq       int64  // position in the chain, contiguous from 1
	Kind      string
	RequestID string
	Payload   []byte
	PrevHash  []byte // Hash of entry Seq-1; 32 zero bytes for Seq 1
	Hash      []byte
}

// GenesisHash returns PrevHash of the first entry of every chain: 32 zero
// bytes (a fresh slice each call).
func GenesisHash() []byte { return make([]byte, sha256.Size) }

// HashEntry computes
// SHA-256(prev ‖ uint64be(seq) ‖ kind ‖ 0 ‖ request_id ‖ 0 ‖ payload).
func HashEntry(prev []byte, seq int64, kind, requestID string, payload []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seq))
	h.Write(b[:])
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(requestID))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum(nil)
}

// RecordPayload is the canonical chain payload of rec: its JSON with Time
// in UTC.
func RecordPayload(rec *Record) ([]byte, error) {
	return AppendPayload(nil, rec)
}

// AppendPayload appends rec's canonical chain payload to dst.
func AppendPayload(dst []byte, rec *Record) ([]byte, error) {
	if rec.Time.Location() == time.UTC {
		return AppendJSON(dst, rec)
	}
	cp := *rec
	cp.Time = cp.Time.UTC()
	return AppendJSON(dst, &cp)
}

// Checkpoint is a signed statement that chain Chain had Size entries with
// head hash Head at Time. Note is the signed text (C2SP tlog-checkpoint
// style: origin, size, base64 head, then the time):
//
//	gatehouse-audit/<chain>
//	<size>
//	<base64(head)>
//	<time RFC 3339>
type Checkpoint struct {
	ID        int64 // store row id (ordering); not signed
	Chain     string
	Size      int64
	Head      []byte
	Time      time.Time
	KeyID     string // hex of the first 8 bytes of SHA-256(public key)
	Note      string
	Signature []byte // Ed25519 over Note
}

// KeyID names an Ed25519 public key in checkpoints.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// SignCheckpoint builds and signs a checkpoint.
func SignCheckpoint(priv ed25519.PrivateKey, chain string, size int64, head []byte, t time.Time) Checkpoint {
	t = t.UTC()
	note := fmt.Sprintf("gatehouse-audit/%s\n%d\n%s\n%s\n", chain, size, base64.StdEncoding.EncodeToString(head), t.Format(time.RFC3339Nano))
	return Checkpoint{
		Chain: chain, Size: size, Head: head, Time: t,
		KeyID:     KeyID(priv.Public().(ed25519.PublicKey)),
		Note:      note,
		Signature: ed25519.Sign(priv, []byte(note)),
	}
}

// Problem kinds reported by verification.
const (
	ProblemEdited       = "edited"        // content changed after it was written
	ProblemDeleted      = "deleted"       // an entry or record is missing
	ProblemReordered    = "reordered"     // an entry sits at the wrong position
	ProblemInserted     = "inserted"      // an entry or record that was never written by the gateway
	ProblemTruncated    = "truncated"     // the chain ends before a signed checkpoint
	ProblemBadSignature = "bad_signature" // a checkpoint not signed by the key, or altered
	ProblemRewritten    = "rewritten"     // the chain no longer matches a signed checkpoint
)

// Problem is one finding of Verify, located by chain position and/or
// request id.
type Problem struct {
	Kind      string `json:"kind"`
	Chain     string `json:"chain,omitempty"`
	Seq       int64  `json:"seq,omitempty"` // chain entry position, when known
	RequestID string `json:"request_id,omitempty"`
	Detail    string `json:"detail"`
}

func (p Problem) String() string {
	var loc []string
	if p.Chain != "" || p.Seq != 0 {
		loc = append(loc, fmt.Sprintf("chain %s entry %d", p.Chain, p.Seq))
	}
	if p.RequestID != "" {
		loc = append(loc, "request "+p.RequestID)
	}
	return fmt.Sprintf("%s: %s: %s", p.Kind, strings.Join(loc, ", "), p.Detail)
}

// VerifyReport is the result of verifying a store.
type VerifyReport struct {
	Entries     int64 `json:"entries"`
	Records     int64 `json:"records"`
	Contents    int64 `json:"contents"` // captured-content rows checked
	Checkpoints int   `json:"checkpoints"`
	Anchors     int   `json:"anchors,omitempty"` // exported checkpoints checked
	Covered     int64 `json:"covered"`           // entries covered by a valid signed checkpoint (all chains)
	// Unsigned lists chains with entries that no valid checkpoint covers
	// at all (checked only with a key): their tail could be truncated or
	// re-chained undetectably. Not a proof of tampering (a gateway may run
	// without signing_key, or not have written its first checkpoint yet).
	Unsigned []string  `json:"unsigned,omitempty"`
	Problems []Problem `json:"problems"`
}

// OK reports whether no problem was found.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verifier is implemented by stores that keep a hash chain.
type Verifier interface {
	// Verify re-computes the chain, checks checkpoints against pub (nil:
	// signatures are not checked, truncation is undetectable) and compares
	// every record with the chain.
	Verify(ctx context.Context, pub ed25519.PublicKey) (*VerifyReport, error)
	// VerifyAnchored is Verify plus checkpoints kept outside the store.
	VerifyAnchored(ctx context.Context, pub ed25519.PublicKey, anchors []Checkpoint) (*VerifyReport, error)
}

// ChainVerifier checks a chain incrementally; stores feed it entries in
// chain order, then checkpoints, then records. It keeps 40 bytes per
// request id.
type ChainVerifier struct {
	pub     ed25519.PublicKey
	fetch   func(chain string, seq int64) (*ChainEntry, error)
	chains  map[string]*chainState
	latest  map[string]latestRef // request id → last entry
	seen    map[string]bool      // request ids seen in records
	broken  []brokenLink
	horizon time.Time
	rep     VerifyReport
}

// SetHorizon declares that records older than t were removed by retention:
// their absence is not a problem.
func (v *ChainVerifier) SetHorizon(t time.Time) { v.horizon = t }

type brokenLink struct {
	chain string
	seq   int64
	id    string
	prev  []byte
}

type chainState struct {
	head    []byte
	last    int64
	byHash  map[string]int64 // stored hash → seq, to classify broken links
	hashes  map[int64][]byte // seq → stored hash (for checkpoint checks)
	covered int64
}

type latestRef struct {
	chain string
	seq   int64
	kind  string
	sum   [32]byte
}

// NewChainVerifier returns a verifier. fetch returns one stored entry; it
// is used only to describe edited records. pub may be nil.
func NewChainVerifier(pub ed25519.PublicKey, fetch func(chain string, seq int64) (*ChainEntry, error)) *ChainVerifier {
	return &ChainVerifier{pub: pub, fetch: fetch, chains: map[string]*chainState{}, latest: map[string]latestRef{}, seen: map[string]bool{}}
}

func (v *ChainVerifier) add(p Problem) { v.rep.Problems = append(v.rep.Problems, p) }

// Entry feeds the next stored entry of its chain (ascending Seq).
func (v *ChainVerifier) Entry(e *ChainEntry) {
	v.rep.Entries++
	st := v.chains[e.Chain]
	if st == nil {
		st = &chainState{head: GenesisHash(), byHash: map[string]int64{}, hashes: map[int64][]byte{}}
		v.chains[e.Chain] = st
	}
	expected := st.last + 1
	linked := bytes.Equal(e.PrevHash, st.head)
	switch {
	case e.Seq > expected:
		n := e.Seq - expected
		v.add(Problem{Kind: ProblemDeleted, Chain: e.Chain, Seq: expected,
			Detail: fmt.Sprintf("%d entr%s missing (positions %d–%d)", n, plural(n, "y", "ies"), expected, e.Seq-1)})
	case !linked:
		// Classified in Report, once every stored hash is known.
		v.broken = append(v.broken, brokenLink{chain: e.Chain, seq: e.Seq, id: e.RequestID, prev: e.PrevHash})
	default:
		if !bytes.Equal(HashEntry(e.PrevHash, e.Seq, e.Kind, e.RequestID, e.Payload), e.Hash) {
			v.add(Problem{Kind: ProblemEdited, Chain: e.Chain, Seq: e.Seq, RequestID: e.RequestID,
				Detail: "entry content does not match its hash"})
		}
	}
	// Continue from what is stored, so later problems are reported too.
	st.head = e.Hash
	st.last = e.Seq
	st.byHash[string(e.Hash)] = e.Seq
	st.hashes[e.Seq] = e.Hash
	v.latest[e.RequestID] = latestRef{chain: e.Chain, seq: e.Seq, kind: e.Kind, sum: sha256.Sum256(e.Payload)}
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Checkpoint feeds a stored checkpoint (after all entries).
func (v *ChainVerifier) Checkpoint(c *Checkpoint) {
	v.rep.Checkpoints++
	v.checkpoint(c, "signed checkpoint")
}

// Anchor feeds a checkpoint kept outside the store (exported to a SIEM or
// WORM storage), after all entries. It catches a rewrite or truncation of
// the store that also deleted or replaced the stored checkpoints.
func (v *ChainVerifier) Anchor(c *Checkpoint) {
	v.rep.Anchors++
	v.checkpoint(c, "exported checkpoint")
}

func (v *ChainVerifier) checkpoint(c *Checkpoint, what string) {
	if v.pub == nil {
		return
	}
	if c.KeyID != KeyID(v.pub) || !ed25519.Verify(v.pub, []byte(c.Note), c.Signature) {
		v.add(Problem{Kind: ProblemBadSignature, Chain: c.Chain, Seq: c.Size,
			Detail: fmt.Sprintf("checkpoint at size %d (key %s) is not signed by key %s", c.Size, c.KeyID, KeyID(v.pub))})
		return
	}
	// Trust only what the signed note says.
	lines := strings.Split(c.Note, "\n")
	if len(lines) < 4 || lines[0] != "gatehouse-audit/"+c.Chain {
		v.add(Problem{Kind: ProblemBadSignature, Chain: c.Chain, Detail: "checkpoint note malformed"})
		return
	}
	size, err1 := strconv.ParseInt(lines[1], 10, 64)
	head, err2 := base64.StdEncoding.DecodeString(lines[2])
	if err1 != nil || err2 != nil {
		v.add(Problem{Kind: ProblemBadSignature, Chain: c.Chain, Detail: "checkpoint note malformed"})
		return
	}
	st := v.chains[c.Chain]
	var last int64
	if st != nil {
		last = st.last
	}
	if size > last {
		v.add(Problem{Kind: ProblemTruncated, Chain: c.Chain, Seq: last + 1,
			Detail: fmt.Sprintf("%s of %s covers %d entries but the chain ends at %d", what, lines[3], size, last)})
		return
	}
	if got := st.hashes[size]; !bytes.Equal(got, head) {
		v.add(Problem{Kind: ProblemRewritten, Chain: c.Chain, Seq: size,
			Detail: fmt.Sprintf("entry %d does not match the %s of %s (chain re-computed after tampering)", size, what, lines[3])})
		return
	}
	st.covered = max(st.covered, size)
}

// Record feeds one stored record (any order).
func (v *ChainVerifier) Record(r *Record) {
	v.rep.Records++
	v.seen[r.RequestID] = true
	ref, ok := v.latest[r.RequestID]
	if !ok {
		v.add(Problem{Kind: ProblemInserted, RequestID: r.RequestID,
			Detail: fmt.Sprintf("record (seq %d) has no chain entry", r.Seq)})
		return
	}
	payload, err := RecordPayload(r)
	if err != nil {
		v.add(Problem{Kind: ProblemEdited, RequestID: r.RequestID, Detail: err.Error()})
		return
	}
	if sha256.Sum256(payload) == ref.sum {
		return
	}
	detail := "record differs from its last chain entry"
	if v.fetch != nil {
		if e, err := v.fetch(ref.chain, ref.seq); err == nil && e != nil {
			var want Record
			if json.Unmarshal(e.Payload, &want) == nil {
				if d := diffRecords(&want, r); d != "" {
					detail = d
				}
			}
		}
	}
	v.add(Problem{Kind: ProblemEdited, Chain: ref.chain, Seq: ref.seq, RequestID: r.RequestID, Detail: detail})
}

// Content feeds one stored captured-content row, as its canonical chain
// payload (content.MetaPayload).
func (v *ChainVerifier) Content(requestID string, payload []byte) {
	v.rep.Contents++
	key := ContentKey(requestID)
	v.seen[key] = true
	ref, ok := v.latest[key]
	switch {
	case !ok:
		v.add(Problem{Kind: ProblemInserted, RequestID: requestID, Detail: "captured content has no chain entry"})
	case ref.kind == EntryPurge:
		v.add(Problem{Kind: ProblemInserted, Chain: ref.chain, Seq: ref.seq, RequestID: requestID, Detail: "captured content present after its audited purge"})
	case sha256.Sum256(payload) != ref.sum:
		v.add(Problem{Kind: ProblemEdited, Chain: ref.chain, Seq: ref.seq, RequestID: requestID, Detail: "captured content (ciphertext or metadata) differs from its chain entry"})
	}
}

// Report finishes verification: chained request ids without a record are
// reported deleted.
func (v *ChainVerifier) Report() *VerifyReport {
	names := make([]string, 0, len(v.chains))
	for name := range v.chains {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		st := v.chains[name]
		v.rep.Covered += st.covered
		if v.pub != nil && st.last > 0 && st.covered == 0 {
			v.rep.Unsigned = append(v.rep.Unsigned, name)
		}
	}
	for _, b := range v.broken {
		st := v.chains[b.chain]
		if j, ok := st.byHash[string(b.prev)]; ok && j != b.seq {
			v.add(Problem{Kind: ProblemReordered, Chain: b.chain, Seq: b.seq, RequestID: b.id,
				Detail: fmt.Sprintf("entry follows entry %d, expected %d", j, b.seq-1)})
		} else if bytes.Equal(b.prev, GenesisHash()) {
			v.add(Problem{Kind: ProblemReordered, Chain: b.chain, Seq: b.seq, RequestID: b.id,
				Detail: "entry claims to start the chain"})
		} else {
			v.add(Problem{Kind: ProblemInserted, Chain: b.chain, Seq: b.seq, RequestID: b.id,
				Detail: "entry does not chain to any stored entry (inserted or forged, or its predecessor was removed)"})
		}
	}
	for id, ref := range v.latest {
		if rid, isContent := strings.CutPrefix(id, "content:"); isContent {
			if !v.seen[id] && ref.kind != EntryPurge {
				v.add(Problem{Kind: ProblemDeleted, Chain: ref.chain, Seq: ref.seq, RequestID: rid,
					Detail: "captured content is missing without an audited purge"})
			}
			continue
		}
		if !v.seen[id] {
			if !v.horizon.IsZero() && v.fetch != nil {
				if e, err := v.fetch(ref.chain, ref.seq); err == nil && e != nil {
					var r Record
					if json.Unmarshal(e.Payload, &r) == nil && r.Time.Before(v.horizon) {
						continue
					}
				}
			}
			v.add(Problem{Kind: ProblemDeleted, Chain: ref.chain, Seq: ref.seq, RequestID: id, Detail: "record is missing from the records table"})
		}
	}
	if v.rep.Problems == nil {
		v.rep.Problems = []Problem{}
	}
	return &v.rep
}

// diffRecords names the JSON fields that differ, "field: want → got".
func diffRecords(want, got *Record) string {
	var out []string
	wv, gv := reflect.ValueOf(want).Elem(), reflect.ValueOf(got).Elem()
	t := wv.Type()
	for i := range t.NumField() {
		a, b := wv.Field(i).Interface(), gv.Field(i).Interface()
		if ta, ok := a.(time.Time); ok {
			if ta.Equal(b.(time.Time)) {
				continue
			}
		} else if reflect.DeepEqual(a, b) {
			continue
		}
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out = append(out, fmt.Sprintf("%s: %v → %v", name, a, b))
	}
	return strings.Join(out, "; ")
}
