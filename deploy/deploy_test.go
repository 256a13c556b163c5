package deploy

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"go.yaml.in/yaml/v3"
)

// obj is one decoded Kubernetes object.
type obj = map[string]any

// get walks a path of map keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string { s, _ := get(v, path...).(string); return s }

func list(v any, path ...any) []any { l, _ := get(v, path...).([]any); return l }

// decodeAll decodes every YAML document of data.
func decodeAll(t *testing.T, name string, data []byte) []obj {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []obj
	for {
		var o obj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

// readManifests decodes every .yaml file under dir (not recursing).
func readManifests(t *testing.T, dir string) map[string][]obj {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s", dir)
	}
	out := map[string][]obj{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = decodeAll(t, f, data)
	}
	return out
}

// index finds objects by kind and name.
type index map[string]obj

func key(kind, name string) string { return kind + "/" + name }

func indexOf(t *testing.T, docs []obj) index {
	t.Helper()
	ix := index{}
	for _, o := range docs {
		kind, name := str(o, "kind"), str(o, "metadata", "name")
		if kind == "" || name == "" {
			t.Errorf("object without kind or name: %v", o)
			continue
		}
		if _, dup := ix[key(kind, name)]; dup {
			t.Errorf("%s/%s defined twice", kind, name)
		}
		ix[key(kind, name)] = o
	}
	return ix
}

func (ix index) must(t *testing.T, kind, name string) obj {
	t.Helper()
	o := ix[key(kind, name)]
	if o == nil {
		t.Fatalf("no %s %q", kind, name)
	}
	return o
}

func labelsMatch(selector, labels any) bool {
	sel, _ := selector.(map[string]any)
	lab, _ := labels.(map[string]any)
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if lab[k] != v {
			return false
		}
	}
	return true
}

// checkBase asserts the essentials of a complete set of objects (the base
// files, or kustomize's rendering of base or overlay).
func checkBase(t *testing.T, ix index) (cfg *config.Config) {
	t.Helper()
	dep := ix.must(t, "Deployment", "gatehouse")
	pod := get(dep, "spec", "template")
	podLabels := get(pod, "metadata", "labels")
	if !labelsMatch(get(dep, "spec", "selector", "matchLabels"), podLabels) {
		t.Error("Deployment selector does not match its pod labels")
	}
	if n, _ := get(dep, "spec", "replicas").(int); n < 2 {
		t.Errorf("replicas %d: a PodDisruptionBudget with minAvailable 1 needs at least 2", n)
	}
	psc := get(pod, "spec", "securityContext")
	if get(psc, "runAsNonRoot") != true || get(psc, "runAsUser") != 65532 || str(psc, "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("pod securityContext %v: want runAsNonRoot, runAsUser 65532, seccomp RuntimeDefault", psc)
	}
	if get(pod, "spec", "automountServiceAccountToken") != false {
		t.Error("the pod mounts a Kubernetes API token it never uses")
	}
	containers := list(pod, "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("%d containers", len(containers))
	}
	c := containers[0]
	if str(c, "image") == "" {
		t.Error("no image")
	}
	csc := get(c, "securityContext")
	if get(csc, "readOnlyRootFilesystem") != true || get(csc, "allowPrivilegeEscalation") != false || get(csc, "runAsNonRoot") != true {
		t.Errorf("container securityContext %v", csc)
	}
	if drop := list(csc, "capabilities", "drop"); !slices.Contains(drop, any("ALL")) {
		t.Errorf("capabilities.drop %v lacks ALL", drop)
	}
	if list(csc, "capabilities", "add") != nil {
		t.Error("capabilities added")
	}
	ports := map[string]int{}
	for _, p := range list(c, "ports") {
		n, _ := get(p, "containerPort").(int)
		ports[str(p, "name")] = n
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"} {
		if got := str(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path %q, want %q", probe, got, path)
		}
		if p := str(c, probe, "httpGet", "port"); ports[p] == 0 {
			t.Errorf("%s port %q is not a named container port", probe, p)
		}
	}
	if str(c, "resources", "requests", "cpu") == "" || str(c, "resources", "requests", "memory") == "" || str(c, "resources", "limits", "memory") == "" {
		t.Errorf("resources %v: want cpu and memory requests and a memory limit", get(c, "resources"))
	}
	grace, _ := get(pod, "spec", "terminationGracePeriodSeconds").(int)
	if grace < 35 { // 30 s drain in serve + preStop
		t.Errorf("terminationGracePeriodSeconds %d is shorter than the drain", grace)
	}

	// Volumes: every mount has a volume; the config comes from the
	// ConfigMap and secrets from the Secret.
	vols := map[string]any{}
	for _, v := range list(pod, "spec", "volumes") {
		vols[str(v, "name")] = v
	}
	mounts := map[string]string{} // volume -> path
	for _, m := range list(c, "volumeMounts") {
		if vols[str(m, "name")] == nil {
			t.Errorf("mount %q has no volume", str(m, "name"))
		}
		mounts[str(m, "name")] = str(m, "mountPath")
	}
	writable := false
	for name, path := range mounts {
		if get(vols[name], "emptyDir") != nil && (path == "/var/lib/gatehouse") {
			writable = true
		}
	}
	if !writable {
		t.Error("no writable volume at /var/lib/gatehouse (the root filesystem is read-only)")
	}
	var cmName, secretName, secretMount, configMount string
	for name, v := range vols {
		if n := str(v, "configMap", "name"); n != "" {
			cmName, configMount = n, mounts[name]
		}
		if n := str(v, "secret", "secretName"); n != "" {
			secretName, secretMount = n, mounts[name]
		}
	}
	cm := ix.must(t, "ConfigMap", cmName)
	sec := ix.must(t, "Secret", secretName)
	secretKeys := map[string]any{}
	for _, field := range []string{"stringData", "data"} {
		if m, ok := get(sec, field).(map[string]any); ok {
			for k, v := range m {
				secretKeys[k] = v
			}
		}
	}
	for _, e := range list(c, "env") {
		if ref := get(e, "valueFrom", "secretKeyRef"); ref != nil {
			if str(ref, "name") != secretName || secretKeys[str(ref, "key")] == nil {
				t.Errorf("env %s refers to missing secret key %v", str(e, "name"), ref)
			}
		}
	}

	// The configuration: accepted by internal/config, listening on the
	// container port, secrets read from the mounted Secret's keys.
	args := list(c, "args")
	cfgPath := ""
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			cfgPath, _ = args[i+1].(string)
		}
	}
	if filepath.Dir(cfgPath) != configMount {
		t.Errorf("--config %q is not in the ConfigMap mount %q", cfgPath, configMount)
	}
	text := str(cm, "data", filepath.Base(cfgPath))
	if text == "" {
		t.Fatalf("ConfigMap %s has no %s", cmName, filepath.Base(cfgPath))
	}
	cfg = validConfig(t, cmName, text)
	if port := portOf(t, cfg.Listen); port != ports["http"] {
		t.Errorf("listen %s does not match containerPort http %d", cfg.Listen, ports["http"])
	}
	if cfg.MetricsListen != "" && portOf(t, cfg.MetricsListen) != ports["metrics"] {
		t.Errorf("metrics_listen %s does not match containerPort metrics", cfg.MetricsListen)
	}
	for _, m := range regexp.MustCompile(`\$\{file:([^}]+)\}`).FindAllStringSubmatch(text, -1) {
		if filepath.Dir(m[1]) != secretMount || secretKeys[filepath.Base(m[1])] == nil {
			t.Errorf("secret %s is not a key of Secret %s mounted at %s", m[1], secretName, secretMount)
		}
	}

	// Service, PDB, HPA and ServiceAccount point at this Deployment.
	svc := ix.must(t, "Service", "gatehouse")
	if !labelsMatch(get(svc, "spec", "selector"), podLabels) {
		t.Error("Service selector does not match the pods")
	}
	for _, p := range list(svc, "spec", "ports") {
		if tp := str(p, "targetPort"); ports[tp] == 0 || tp == "metrics" {
			t.Errorf("Service targetPort %q: want the http container port", tp)
		}
	}
	pdb := ix.must(t, "PodDisruptionBudget", "gatehouse")
	if !labelsMatch(get(pdb, "spec", "selector", "matchLabels"), podLabels) {
		t.Error("PodDisruptionBudget selector does not match the Deployment's pods")
	}
	if hpa := ix[key("HorizontalPodAutoscaler", "gatehouse")]; hpa != nil {
		if str(hpa, "spec", "scaleTargetRef", "kind") != "Deployment" || str(hpa, "spec", "scaleTargetRef", "name") != "gatehouse" {
			t.Error("HPA does not target the Deployment")
		}
		if n, _ := get(hpa, "spec", "minReplicas").(int); n < 2 {
			t.Errorf("HPA minReplicas %d: the PDB needs 2", n)
		}
	}
	ix.must(t, "ServiceAccount", str(pod, "spec", "serviceAccountName"))
	return cfg
}

func portOf(t *testing.T, addr string) int {
	i := strings.LastIndex(addr, ":")
	n, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		t.Errorf("address %q", addr)
	}
	return n
}

// validConfig decodes strictly, defaults and validates a configuration
// (secret references are checked for form, not resolved).
func validConfig(t *testing.T, name, text string) *config.Config {
	t.Helper()
	cfg, err := config.Decode([]byte(text))
	if err != nil {
		t.Fatalf("%s: the configuration does not decode: %v", name, err)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%s: the configuration is invalid:\n%v", name, err)
	}
	return cfg
}

func TestKubernetesBase(t *testing.T) {
	files := readManifests(t, "kubernetes/base")
	var docs []obj
	for name, d := range files {
		if name != "kustomization.yaml" {
			docs = append(docs, d...)
		}
	}
	ix := indexOf(t, docs)
	cfg := checkBase(t, ix)
	if up := cfg.UpstreamByName("foundry"); up == nil || !up.APIKey.IsSet() {
		t.Error("the base authenticates to Foundry with the mounted key")
	}
	if cfg.Audit.Postgres == "" || cfg.Limits.Redis == "" {
		t.Error("several replicas need a shared audit store (audit.postgres) and shared quotas (limits.redis)")
	}
	if ns := ix.must(t, "Namespace", "gatehouse"); str(ns, "metadata", "labels", "pod-security.kubernetes.io/enforce") != "restricted" {
		t.Error("namespace does not enforce the restricted Pod Security Standard")
	}

	// kustomization.yaml lists every manifest, and only existing ones.
	k := files["kustomization.yaml"][0]
	var listed []string
	for _, r := range list(k, "resources") {
		listed = append(listed, r.(string))
	}
	for name := range files {
		if name != "kustomization.yaml" && !slices.Contains(listed, name) {
			t.Errorf("%s is not listed in kustomization.yaml", name)
		}
	}
	for _, r := range listed {
		if files[r] == nil {
			t.Errorf("kustomization.yaml lists missing %s", r)
		}
	}
	if str(list(k, "images")[0], "name") != str(ix.must(t, "Deployment", "gatehouse"), "spec", "template", "spec", "containers", 0, "image") {
		t.Error("kustomization images: does not name the Deployment's image")
	}
}

func TestKubernetesWorkloadIdentityOverlay(t *testing.T) {
	files := readManifests(t, "kubernetes/workload-identity")
	k := files["kustomization.yaml"][0]
	if !slices.Contains(list(k, "resources"), any("../base")) {
		t.Error("the overlay does not build on ../base")
	}
	for _, p := range list(k, "patches") {
		if path := str(p, "path"); path != "" && files[path] == nil {
			t.Errorf("patch %s missing", path)
		}
	}
	sa := files["serviceaccount-patch.yaml"][0]
	if id := str(sa, "metadata", "annotations", "azure.workload.identity/client-id"); !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(id) {
		t.Errorf("service account client-id annotation %q", id)
	}
	dep := files["deployment-patch.yaml"][0]
	if str(dep, "spec", "template", "metadata", "labels", "azure.workload.identity/use") != "true" {
		t.Error("the pod is not labelled azure.workload.identity/use: \"true\" (a string)")
	}
	cfg := validConfig(t, "configmap-patch.yaml", str(files["configmap-patch.yaml"][0], "data", "gatehouse.yaml"))
	up := cfg.UpstreamByName("foundry")
	if up == nil || up.APIKey.IsSet() || up.Azure == nil || up.Azure.WorkloadIdentity == nil {
		t.Error("the overlay's upstream does not use workload identity")
	}
}

// TestKustomizeRender renders both kustomizations with kubectl (when it is
// installed) and checks the result like the base files.
func TestKustomizeRender(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: kustomize rendering not checked")
	}
	for _, dir := range []string{"kubernetes/base", "kubernetes/workload-identity"} {
		out, err := exec.Command(kubectl, "kustomize", dir).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
		}
		ix := indexOf(t, decodeAll(t, dir, out))
		cfg := checkBase(t, ix)
		for _, o := range ix {
			if kind := str(o, "kind"); kind != "Namespace" && str(o, "metadata", "namespace") != "gatehouse" {
				t.Errorf("%s: %s is not in namespace gatehouse", dir, kind)
			}
		}
		image := str(ix.must(t, "Deployment", "gatehouse"), "spec", "template", "spec", "containers", 0, "image")
		if !strings.Contains(image, "/gatehouse:") {
			t.Errorf("%s: image %q was not rewritten", dir, image)
		}
		if dir == "kubernetes/workload-identity" {
			if cfg.UpstreamByName("foundry").Azure == nil {
				t.Error("overlay rendering kept the key-based upstream")
			}
			if _, ok := get(ix.must(t, "Secret", "gatehouse-upstream"), "stringData").(map[string]any)["foundry-api-key"]; ok {
				t.Error("overlay rendering kept the Foundry key")
			}
		}
	}
}

// dockerfile is the parsed Dockerfile: instructions per stage.
type stage struct {
	from  string
	instr []string // "RUN ...", "USER ...", with continuations joined
}

func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		if strings.HasPrefix(line, "FROM ") {
			stages = append(stages, stage{from: line})
			return
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, line)
		}
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(l, " "), "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(l)
		flush()
	}
	flush()
	return stages
}

var ldflagsRE = regexp.MustCompile(`-ldflags "([^"]+)"`)

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages: want a build stage and a runtime stage", len(stages))
	}
	final := stages[len(stages)-1]
	if !strings.Contains(final.from, "gcr.io/distroless/static-debian12:nonroot") && final.from != "FROM scratch" {
		t.Errorf("final image %q: want distroless static nonroot or scratch", final.from)
	}
	var user, entry string
	for _, in := range final.instr {
		switch {
		case strings.HasPrefix(in, "RUN "):
			t.Errorf("the final stage runs %q: it has no shell", in)
		case strings.HasPrefix(in, "USER "):
			user = in
		case strings.HasPrefix(in, "ENTRYPOINT "):
			entry = in
		}
	}
	if user != "USER 65532:65532" && user != "USER 65532" {
		t.Errorf("final USER %q, want 65532", user)
	}
	if !strings.HasPrefix(entry, `ENTRYPOINT ["`) {
		t.Errorf("ENTRYPOINT %q is not exec form (no shell in the image)", entry)
	}
	build := strings.Join(stages[0].instr, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "go build -trimpath", "./cmd/gatehouse", "-X github.com/gatehouse-dev/gatehouse/internal/cli.Version=${VERSION}"} {
		if !strings.Contains(build, want) {
			t.Errorf("build stage lacks %q", want)
		}
	}
	if m := ldflagsRE.FindStringSubmatch(build); m == nil || !strings.Contains(m[1], "-s -w") {
		t.Error("ldflags do not strip the binary (-s -w)")
	}
}

// TestStaticBinary builds cmd/gatehouse exactly as the Dockerfile does and
// checks that the result is static (no interpreter, no dynamic section) and
// carries the version stamped by -ldflags. The first build takes about a
// minute on a cold cache; -short skips it.
func TestStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not building the static binary")
	}
	var build string
	for _, in := range parseDockerfile(t)[0].instr {
		if strings.Contains(in, "go build") {
			build = in
		}
	}
	m := ldflagsRE.FindStringSubmatch(build)
	if m == nil {
		t.Fatal("no -ldflags in the Dockerfile's go build")
	}
	const version = "v0.0.0-deploy-test"
	ldflags := strings.ReplaceAll(m[1], "${VERSION}", version)
	bin := filepath.Join(t.TempDir(), "gatehouse")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, "./cmd/gatehouse")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %s program header: it is dynamically linked", p.Type)
		}
	}
	for _, s := range []string{".interp", ".dynamic"} {
		if f.Section(s) != nil {
			t.Errorf("the binary has a %s section", s)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary imports %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary keeps its symbol table (-s not applied)")
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "gatehouse "+version {
		t.Errorf("gatehouse version = %q, %v; want %q (the -X path in the Dockerfile must name internal/cli.Version)", out, err, "gatehouse "+version)
	}
	if data, _ := os.ReadFile(bin); bytes.Contains(data, []byte(mustAbs(t, ".."))) {
		t.Error("the binary contains the build directory (-trimpath not applied)")
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// bicepCode strips comments and string contents from Bicep source, keeping
// the quotes, so that structure can be checked. Interpolations inside
// strings (${...}) are kept as code.
func bicepCode(t *testing.T, src string) string {
	t.Helper()
	var b strings.Builder
	inStr, multi := false, false
	depth := 0 // interpolation depth inside a string
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case multi:
			if strings.HasPrefix(src[i:], "'''") {
				multi = false
				b.WriteString("'''")
				i += 2
			}
		case inStr && depth == 0:
			switch {
			case c == '\\':
				i++
			case c == '\'':
				inStr = false
				b.WriteByte(c)
			case strings.HasPrefix(src[i:], "${"):
				depth = 1
				b.WriteString("${")
				i++
			}
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			b.WriteByte('\n')
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i:], "*/")
			if end < 0 {
				t.Fatal("unterminated /* comment")
			}
			i += end + 1
		case strings.HasPrefix(src[i:], "'''"):
			multi = true
			b.WriteString("'''")
			i += 2
		case c == '\'':
			if inStr { // closing a nested string inside an interpolation
				b.WriteByte(c)
				continue
			}
			inStr = true
			b.WriteByte(c)
		default:
			if inStr && depth > 0 {
				if c == '{' {
					depth++
				} else if c == '}' {
					depth--
					if depth == 0 {
						b.WriteByte('}')
						continue
					}
				}
			}
			b.WriteByte(c)
		}
	}
	if inStr || multi {
		t.Fatal("unterminated string")
	}
	return b.String()
}

func checkBalanced(t *testing.T, name, code string) {
	t.Helper()
	if err := balancedErr(code); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

var paramRE = regexp.MustCompile(`(?m)^param (\w+) `)

// TestBicep checks the templates' structure (no Bicep compiler here):
// balanced brackets outside strings and comments, every parameter used,
// the resources of the architecture present and wired.
func TestBicep(t *testing.T) {
	srcs := map[string]string{}
	for _, f := range []string{"azure/main.bicep", "azure/foundry-role.bicep"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		srcs[f] = string(data)
		code := bicepCode(t, string(data))
		checkBalanced(t, f, code)
		for _, m := range paramRE.FindAllStringSubmatch(code, -1) {
			uses := regexp.MustCompile(`\b`+m[1]+`\b`).FindAllStringIndex(code, -1)
			if len(uses) < 2 {
				t.Errorf("%s: param %s is declared but never used", f, m[1])
			}
		}
	}
	main := srcs["azure/main.bicep"]
	for _, want := range []string{
		"'Microsoft.OperationalInsights/workspaces@",
		"'Microsoft.App/managedEnvironments@",
		"destination: 'log-analytics'",
		"'Microsoft.App/containerApps@",
		"type: 'SystemAssigned'",
		"external: true",
		"allowInsecure: false",
		"targetPort: 8080",
		"type: 'Liveness'", "path: '/healthz'",
		"type: 'Readiness'", "path: '/readyz'",
		"minReplicas: minReplicas", "maxReplicas: maxReplicas",
		"secrets: secrets",
		"storageType: 'Secret'",
		"managed_identity: {}",
		"module foundryRole 'foundry-role.bicep'",
		"principalId: app.identity.principalId",
		"/v2.0'",
		"@secure()",
	} {
		if !strings.Contains(main, want) {
			t.Errorf("main.bicep lacks %q", want)
		}
	}
	role := srcs["azure/foundry-role.bicep"]
	for _, want := range []string{
		"'Microsoft.Authorization/roleAssignments@",
		"'Microsoft.CognitiveServices/accounts@",
		"existing",
		"scope: foundry",
		"principalType: 'ServicePrincipal'",
		"a97b65f3-24c7-4388-baec-2e87135dc908", // Cognitive Services User
	} {
		if !strings.Contains(role, want) {
			t.Errorf("foundry-role.bicep lacks %q", want)
		}
	}
	// The module is given exactly the parameters it declares.
	declared := paramRE.FindAllStringSubmatch(role, -1)
	block := main[strings.Index(main, "module foundryRole"):]
	block = block[strings.Index(block, "params: {"):]
	block = block[:strings.Index(block, "}")]
	for _, m := range declared {
		if !strings.Contains(block, m[1]+":") && !strings.Contains(role, "param "+m[1]+" string =") {
			t.Errorf("the module call does not pass %s", m[1])
		}
	}
	// The parameter file sets only declared parameters.
	data, err := os.ReadFile("azure/main.bicepparam")
	if err != nil {
		t.Fatal(err)
	}
	mainParams := map[string]bool{}
	for _, m := range paramRE.FindAllStringSubmatch(main, -1) {
		mainParams[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`(?m)^param (\w+) =`).FindAllStringSubmatch(string(data), -1) {
		if !mainParams[m[1]] {
			t.Errorf("main.bicepparam sets undeclared %s", m[1])
		}
	}
	checkBalanced(t, "main.bicepparam", bicepCode(t, string(data)))
}

// TestBicepParserCatchesMistakes: the structural checks fail on broken
// input, so that a passing TestBicep means something.
func TestBicepParserCatchesMistakes(t *testing.T) {
	code := bicepCode(t, "var a = '{ ${b[0]} }' // }\nvar c = '''\n}}}\n'''\nvar d = 'it\\'s {'\n")
	if err := balancedErr(code); err != nil || strings.Contains(code, "}}}") {
		t.Errorf("string or comment contents leak into code: %q (%v)", code, err)
	}
	for _, src := range []string{
		"var x = {\n  y: [1, 2\n}\n",
		"resource a 'x@1' = {\n  b: (1]\n}\n",
		"var x = '${y}' }\n",
	} {
		if err := balancedErr(bicepCode(t, src)); err == nil {
			t.Errorf("%q: unbalanced brackets not detected", src)
		}
	}
}

// balancedErr reports the first unbalanced bracket of code, with its line.
func balancedErr(code string) error {
	pairs := map[byte]byte{')': '(', ']': '[', '}': '{'}
	var stack []byte
	line := 1
	for i := 0; i < len(code); i++ {
		switch c := code[i]; c {
		case '\n':
			line++
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return fmt.Errorf("line %d: unbalanced %q", line, c)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("%d unclosed brackets", len(stack))
	}
	return nil
}

var bicepStringRE = regexp.MustCompile(`'((?:[^'\\]|\\.)*)'`)

// bicepLiterals returns the string literals of src, unescaped, in order.
func bicepLiterals(src string) []string {
	var out []string
	for _, m := range bicepStringRE.FindAllStringSubmatch(src, -1) {
		s := strings.NewReplacer(`\n`, "\n", `\'`, "'", `\\`, `\`, `\$`, "$").Replace(m[1])
		out = append(out, s)
	}
	return out
}

// TestBicepConfig assembles the gateway configuration main.bicep generates
// (configLines, with sample parameter values in the interpolations) and
// checks that internal/config accepts it, in both audit variants.
func TestBicepConfig(t *testing.T) {
	data, err := os.ReadFile("azure/main.bicep")
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	varDef := func(name string) string {
		i := strings.Index(src, "\nvar "+name+" = ")
		if i < 0 {
			t.Fatalf("no var %s", name)
		}
		rest := src[i+1:]
		if j := strings.Index(rest, "\nvar "); j > 0 {
			rest = rest[:j]
		}
		return rest
	}
	values := map[string]string{
		"namePrefix": "gatehouse", "containerEnv.properties.defaultDomain": "purple-sea-1234.westeurope.azurecontainerapps.io",
		"issuer":         "https://login.microsoftonline.com/00000000-0000-4000-8000-000000000001/v2.0",
		"clientId":       "00000000-0000-4000-8000-000000000002",
		"foundryBaseUrl": "https://contoso-ai.services.ai.azure.com/anthropic",
		"requiredRole":   "Claude.User", "m.id": "claude-sonnet-4-6", "m.deployment": "sonnet-prod",
		"auditPostgresUrl": "postgres://gatehouse@db.postgres.database.azure.com:5432/gatehouse?sslmode=require",
	}
	interp := regexp.MustCompile(`\$\{([^}]+)\}`)
	expand := func(s string) string {
		return interp.ReplaceAllStringFunc(s, func(m string) string {
			v, ok := values[m[2:len(m)-1]]
			if !ok {
				t.Errorf("no sample value for %s", m)
			}
			return v
		})
	}
	// The helper variables: the literals of each branch.
	lits := func(name string) []string { return bicepLiterals(varDef(name)) }
	model := lits("modelLines")
	role := lits("roleLines")
	audit := lits("auditLines") // postgres pair, then sqlite pair
	if len(model) != 1 || len(role) != 1 || len(audit) != 4 {
		t.Fatalf("unexpected shapes: modelLines %d, roleLines %d, auditLines %d literals", len(model), len(role), len(audit))
	}
	groups := regexp.MustCompile(`\],\s*([\w,\s]+?),\s*\[`).Split(varDef("configLines"), -1)
	seps := regexp.MustCompile(`\],\s*([\w,\s]+?),\s*\[`).FindAllStringSubmatch(varDef("configLines"), -1)
	if len(groups) != 3 || len(seps) != 2 {
		t.Fatalf("configLines is not concat([...], vars, [...], vars, [...]): %d groups", len(groups))
	}
	for _, auditVariant := range [][]string{audit[:2], audit[2:]} {
		var lines []string
		for i, g := range groups {
			lines = append(lines, bicepLiterals(g)...)
			if i < len(seps) {
				for _, v := range strings.Split(seps[i][1], ",") {
					switch strings.TrimSpace(v) {
					case "roleLines":
						lines = append(lines, role...)
					case "modelLines":
						lines = append(lines, model...)
					case "auditLines":
						lines = append(lines, auditVariant...)
					default:
						t.Fatalf("unknown variable %q in configLines", v)
					}
				}
			}
		}
		text := expand(strings.Join(lines, "\n")) + "\n"
		cfg := validConfig(t, "main.bicep configLines", text)
		up := cfg.UpstreamByName("foundry")
		if up == nil || up.Azure == nil || up.Azure.ManagedIdentity == nil || up.APIKey.IsSet() {
			t.Errorf("the generated upstream does not use the managed identity:\n%s", text)
		}
		if cfg.Models[0].UpstreamModel != "sonnet-prod" || cfg.Identity.Audiences[0] != values["clientId"] || len(cfg.Identity.RequiredRoles) != 1 {
			t.Errorf("generated config lost a parameter:\n%s", text)
		}
		if !strings.HasPrefix(cfg.PublicURL, "https://gatehouse-app.") {
			t.Errorf("public_url %q", cfg.PublicURL)
		}
	}
}
