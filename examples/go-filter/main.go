// go-filter is an example proxy-wasm filter written with weft's Go SDK
// (weft.dev/sdk/go) and built with standard Go:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o go-filter.wasm .
//
// It touches every group of the ABI:
//
//   - headers: adds x-go-filter: on to every proxied request and
//     x-go-path / x-go-request-count to its response;
//   - properties: echoes request.path (response header x-go-path) and
//     source.address (request header x-go-source);
//   - bodies: buffers the response body to its end and rewrites it to
//     "[go-filter] " + the body in upper case;
//   - local responses: /go/deny answers 403 "denied by go-filter\n";
//     /go/stats answers 200 with the shared counters as JSON;
//   - HTTP calls: /go/call/... pauses the request, calls GET /token on the
//     configured cluster, and resumes it with x-go-token (the answer's
//     x-token header) and x-go-callout-status (its :status);
//   - ticks: every tick_ms the plugin context adds one to the shared
//     counter "ticks";
//   - shared data with CAS: the shared counter "requests" counts proxied
//     requests across VMs and workers;
//   - queues: every proxied request enqueues its path on the queue
//     "go-filter-paths"; the plugin context that registered it dequeues in
//     OnQueueReady and counts the items in the shared counter "dequeued";
//   - metrics: counter go_filter_requests, gauge go_filter_last_path_length,
//     histogram go_filter_response_bytes;
//   - logging: one info line per proxied request
//     ("go-filter: request <path> #<n>").
//
// Plugin configuration (JSON, all optional):
// {"cluster": "callout", "tick_ms": 50}
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"weft.dev/sdk/go/proxywasm"
	"weft.dev/sdk/go/proxywasm/types"
)

// c-shared modules need package main with a main function; it never runs.
func main() {}

func init() { proxywasm.SetVMContext(&vmContext{}) }

const queueName = "go-filter-paths"

type vmContext struct{ types.DefaultVMContext }

func (*vmContext) OnVMStart(int) types.OnVMStartStatus {
	proxywasm.LogInfo("go-filter: vm started")
	return types.VMStartStatusOK
}

func (*vmContext) NewPluginContext(uint32) types.PluginContext { return &pluginContext{} }

type config struct {
	Cluster string `json:"cluster"`
	TickMs  uint32 `json:"tick_ms"`
}

type pluginContext struct {
	types.DefaultPluginContext
	cfg      config
	queueID  uint32
	requests proxywasm.MetricCounter
	lastPath proxywasm.MetricGauge
	respSize proxywasm.MetricHistogram
}

func (p *pluginContext) OnPluginStart(size int) types.OnPluginStartStatus {
	p.cfg = config{Cluster: "callout", TickMs: 50}
	if size > 0 {
		data, err := proxywasm.GetPluginConfiguration()
		if err != nil {
			proxywasm.LogErrorf("go-filter: cannot read the plugin configuration: %v", err)
			return types.OnPluginStartStatusFailed
		}
		if err := json.Unmarshal(data, &p.cfg); err != nil {
			proxywasm.LogErrorf("go-filter: invalid pluginConfig (want {\"cluster\": \"...\", \"tick_ms\": N}): %v", err)
			return types.OnPluginStartStatusFailed
		}
	}
	var err error
	if p.requests, err = proxywasm.DefineCounterMetric("go_filter_requests"); err != nil {
		proxywasm.LogErrorf("go-filter: defining go_filter_requests: %v", err)
		return types.OnPluginStartStatusFailed
	}
	if p.lastPath, err = proxywasm.DefineGaugeMetric("go_filter_last_path_length"); err != nil {
		proxywasm.LogErrorf("go-filter: defining go_filter_last_path_length: %v", err)
		return types.OnPluginStartStatusFailed
	}
	if p.respSize, err = proxywasm.DefineHistogramMetric("go_filter_response_bytes"); err != nil {
		proxywasm.LogErrorf("go-filter: defining go_filter_response_bytes: %v", err)
		return types.OnPluginStartStatusFailed
	}
	if p.queueID, err = proxywasm.RegisterSharedQueue(queueName); err != nil {
		proxywasm.LogErrorf("go-filter: registering queue %s: %v", queueName, err)
		return types.OnPluginStartStatusFailed
	}
	if err := proxywasm.SetTickPeriodMilliSeconds(p.cfg.TickMs); err != nil {
		proxywasm.LogErrorf("go-filter: setting the tick period: %v", err)
		return types.OnPluginStartStatusFailed
	}
	proxywasm.LogInfof("go-filter: configured (cluster %q, tick every %d ms)", p.cfg.Cluster, p.cfg.TickMs)
	return types.OnPluginStartStatusOK
}

func (p *pluginContext) OnTick() {
	if _, err := addShared("ticks", 1); err != nil {
		proxywasm.LogWarnf("go-filter: counting a tick: %v", err)
	}
}

func (p *pluginContext) OnQueueReady(queueID uint32) {
	n := 0
	for i := 0; i < 1000; i++ { // bounded: the host wakes us again for later items
		if _, err := proxywasm.DequeueSharedQueue(queueID); err != nil {
			if !errors.Is(err, types.ErrorStatusEmpty) {
				proxywasm.LogWarnf("go-filter: dequeue: %v", err)
			}
			break
		}
		n++
	}
	if n > 0 {
		if _, err := addShared("dequeued", uint64(n)); err != nil {
			proxywasm.LogWarnf("go-filter: counting dequeued items: %v", err)
		}
	}
}

func (p *pluginContext) NewHttpContext(uint32) types.HttpContext {
	return &httpContext{plugin: p}
}

// addShared adds delta to a decimal counter in shared data with
// compare-and-swap, retrying (boundedly) when another VM got there first,
// and returns the new value.
func addShared(key string, delta uint64) (uint64, error) {
	for attempt := 0; attempt < 100; attempt++ {
		var cur uint64
		value, cas, err := proxywasm.GetSharedData(key)
		switch {
		case errors.Is(err, types.ErrorStatusNotFound):
			cas = 0
		case err != nil:
			return 0, err
		default:
			if cur, err = strconv.ParseUint(string(value), 10, 64); err != nil {
				return 0, errors.New("shared " + key + " is not a number: " + err.Error())
			}
		}
		next := cur + delta
		err = proxywasm.SetSharedData(key, []byte(strconv.FormatUint(next, 10)), cas)
		if err == nil {
			return next, nil
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			return 0, err
		}
	}
	return 0, errors.New("shared " + key + ": too many CAS conflicts")
}

func readShared(key string) uint64 {
	value, _, err := proxywasm.GetSharedData(key)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(string(value), 10, 64)
	return n
}

type httpContext struct {
	types.DefaultHttpContext
	plugin *pluginContext
	path   string
	count  uint64
	// local is set when this filter answered the request itself; its own
	// replies are left as they are.
	local bool
}

func (h *httpContext) OnHttpRequestHeaders(int, bool) types.Action {
	path, err := proxywasm.GetPropertyString([]string{"request", "path"})
	if err != nil {
		proxywasm.LogWarnf("go-filter: property request.path: %v", err)
	}
	h.path = path

	switch {
	case path == "/go/deny":
		h.local = true
		if err := proxywasm.SendHttpResponseWithDetails(403, "go-filter-denied",
			[][2]string{{"x-denied-by", "go-filter"}}, []byte("denied by go-filter\n"), -1); err != nil {
			proxywasm.LogErrorf("go-filter: local reply: %v", err)
		}
		return types.ActionPause
	case path == "/go/stats":
		h.local = true
		stats, _ := json.Marshal(map[string]uint64{
			"requests": readShared("requests"),
			"ticks":    readShared("ticks"),
			"dequeued": readShared("dequeued"),
		})
		if err := proxywasm.SendHttpResponse(200,
			[][2]string{{"content-type", "application/json"}}, append(stats, '\n'), -1); err != nil {
			proxywasm.LogErrorf("go-filter: local reply: %v", err)
		}
		return types.ActionPause
	}

	if err := proxywasm.AddHttpRequestHeader("x-go-filter", "on"); err != nil {
		proxywasm.LogWarnf("go-filter: adding x-go-filter: %v", err)
	}
	if src, err := proxywasm.GetPropertyString([]string{"source", "address"}); err == nil {
		// Replace, not add: a client-sent x-go-source must not survive.
		_ = proxywasm.ReplaceHttpRequestHeader("x-go-source", src)
	}
	n, err := addShared("requests", 1)
	if err != nil {
		proxywasm.LogWarnf("go-filter: counting the request: %v", err)
	}
	h.count = n
	_ = proxywasm.ReplaceHttpRequestHeader("x-go-request-count", strconv.FormatUint(n, 10))
	if err := proxywasm.EnqueueSharedQueue(h.plugin.queueID, []byte(path)); err != nil {
		proxywasm.LogWarnf("go-filter: enqueue: %v", err)
	}
	_ = h.plugin.requests.Increment(1)
	_ = h.plugin.lastPath.Set(int64(len(path)))
	proxywasm.LogInfof("go-filter: request %s #%d", path, n)

	if strings.HasPrefix(path, "/go/call") {
		_, err := proxywasm.DispatchHttpCall(h.plugin.cfg.Cluster, [][2]string{
			{":method", "GET"}, {":path", "/token"}, {":authority", h.plugin.cfg.Cluster},
		}, nil, nil, 5000, h.onCallout)
		if err != nil {
			proxywasm.LogErrorf("go-filter: http call to %s: %v", h.plugin.cfg.Cluster, err)
			h.local = true
			_ = proxywasm.SendHttpResponse(502, nil, []byte("go-filter: callout failed\n"), -1)
			return types.ActionPause
		}
		return types.ActionPause
	}
	return types.ActionContinue
}

func (h *httpContext) onCallout(numHeaders, bodySize, numTrailers int) {
	token, err := proxywasm.GetHttpCallResponseHeader("x-token")
	if err != nil {
		token = "none"
	}
	status, _ := proxywasm.GetHttpCallResponseHeader(":status")
	body, _ := proxywasm.GetHttpCallResponseBody(0, bodySize)
	_ = proxywasm.ReplaceHttpRequestHeader("x-go-token", token)
	_ = proxywasm.ReplaceHttpRequestHeader("x-go-callout-status", status)
	_ = proxywasm.ReplaceHttpRequestHeader("x-go-callout-body", strings.TrimSpace(string(body)))
	if err := proxywasm.ResumeHttpRequest(); err != nil {
		proxywasm.LogErrorf("go-filter: resuming the request: %v", err)
	}
}

func (h *httpContext) OnHttpResponseHeaders(int, bool) types.Action {
	if h.local {
		return types.ActionContinue
	}
	_ = proxywasm.ReplaceHttpResponseHeader("x-go-path", h.path)
	_ = proxywasm.ReplaceHttpResponseHeader("x-go-request-count", strconv.FormatUint(h.count, 10))
	// The body is rewritten below: its length changes.
	_ = proxywasm.RemoveHttpResponseHeader("content-length")
	return types.ActionContinue
}

func (h *httpContext) OnHttpResponseBody(bodySize int, endOfStream bool) types.Action {
	if h.local {
		return types.ActionContinue
	}
	if !endOfStream {
		return types.ActionPause // buffer until the whole body is here
	}
	body, err := proxywasm.GetHttpResponseBody(0, bodySize)
	if err != nil {
		proxywasm.LogWarnf("go-filter: reading the response body: %v", err)
		return types.ActionContinue
	}
	_ = h.plugin.respSize.Record(uint64(len(body)))
	rewritten := append([]byte("[go-filter] "), bytes.ToUpper(body)...)
	if err := proxywasm.ReplaceHttpResponseBody(rewritten); err != nil {
		proxywasm.LogWarnf("go-filter: rewriting the response body: %v", err)
	}
	return types.ActionContinue
}
