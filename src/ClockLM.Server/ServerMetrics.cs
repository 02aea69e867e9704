using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using ClockLM.Chat;

namespace ClockLM.Server;

/// <summary>Request counters and the scheduler's load in Prometheus' text exposition format.</summary>
internal sealed class ServerMetrics
{
    private readonly ConcurrentDictionary<(string Path, int Status), long> _requests = new();

    public void CountRequest(string path, int status) => _requests.AddOrUpdate((path, status), 1, (_, n) => n + 1);

    /// <summary>The metrics: the requests counted here, the scheduler's <paramref name="s"/>, and the fast paths the
    /// served model runs without (<paramref name="kernelFallbacks"/>, counted when it loaded).</summary>
    public string Render(SchedulerStats s, int kernelFallbacks)
    {
        var text = new StringBuilder();
        void Metric(string name, string type, string help, double value)
        {
            text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            text.Append(name).Append(' ').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        }
        text.Append("# HELP clocklm_http_requests_total HTTP requests answered, by path and status.\n");
        text.Append("# TYPE clocklm_http_requests_total counter\n");
        foreach (var ((path, status), n) in _requests.OrderBy(e => e.Key.Path, StringComparer.Ordinal).ThenBy(e => e.Key.Status))
            text.Append($"clocklm_http_requests_total{{path=\"{path}\",status=\"{status}\"}} {n}\n");
        Metric("clocklm_requests_completed_total", "counter", "Generations that ended normally (stop or length).", s.Completed);
        Metric("clocklm_requests_cancelled_total", "counter", "Generations cancelled, e.g. by a client that disconnected.", s.Cancelled);
        Metric("clocklm_requests_failed_total", "counter", "Generations ended by an engine error.", s.Failed);
        Metric("clocklm_requests_rejected_total", "counter", "Requests refused with 503 because the queue was full.", s.Rejected);
        Metric("clocklm_prompt_tokens_total", "counter", "Prompt tokens evaluated.", s.PromptTokens);
        Metric("clocklm_prompt_tokens_cached_total", "counter", "Prompt tokens taken from a slot's KV cache instead of evaluated.", s.CachedPromptTokens);
        Metric("clocklm_generated_tokens_total", "counter", "Tokens generated.", s.GeneratedTokens);
        Metric("clocklm_batched_tokens_total", "counter", "Tokens decoded in steps that ran several slots in one pass over the weights.", s.BatchedTokens);
        Metric("clocklm_batch_fallbacks_total", "counter", "Batched steps that failed, after which their slots ran one by one.", s.BatchFallbacks);
        Metric("clocklm_draft_passes_total", "counter", "Speculative decoding: slot steps that verified drafted tokens.", s.DraftPasses);
        Metric("clocklm_drafted_tokens_total", "counter", "Speculative decoding: tokens drafted.", s.DraftedTokens);
        Metric("clocklm_draft_accepted_tokens_total", "counter", "Speculative decoding: drafted tokens the model chose too.", s.AcceptedDraftTokens);
        Metric("clocklm_draft_fallbacks_total", "counter", "Speculative decoding: drafts that failed, after which the token ran without drafts.", s.DraftFallbacks);
        Metric("clocklm_kernel_fallbacks", "gauge", "Fast paths the served models run without: matrices packing had to leave in their file layout, kernels below the fast path (logged when it loaded).", kernelFallbacks);
        Metric("clocklm_kv_exact_half_widenings_total", "counter", "Attention reads of F16 KV caches on the slower exact widening, because a cache held an infinite or NaN half (logged the first time).", s.ExactHalfWidenings);
        Metric("clocklm_context_shifts_total", "counter", "Generations that filled their context and went on after dropping half of it.", s.ContextShifts);
        Metric("clocklm_generated_tokens_per_second", "gauge", "Generated tokens per second of scheduler busy time.", s.GeneratedTokensPerSecond);
        Metric("clocklm_busy_seconds_total", "counter", "Time the scheduler spent running decode rounds.", s.BusyTime.TotalSeconds);
        Metric("clocklm_queue_depth", "gauge", "Requests waiting for a slot.", s.QueueDepth);
        Metric("clocklm_queue_capacity", "gauge", "Most requests that may wait.", s.QueueCapacity);
        Metric("clocklm_slots", "gauge", "Slots (sequences generated at once).", s.Slots);
        Metric("clocklm_slots_active", "gauge", "Slots running a request.", s.ActiveSlots);
        Metric("clocklm_kv_cache_used_positions", "gauge", "KV-cache positions in use across the slots.", s.KvCacheUsed);
        Metric("clocklm_kv_cache_capacity_positions", "gauge", "KV-cache positions in all.", s.KvCacheCapacity);
        Metric("clocklm_kv_cache_usage_ratio", "gauge", "Fraction of the KV cache in use.", s.KvCacheCapacity == 0 ? 0 : (double)s.KvCacheUsed / s.KvCacheCapacity);
        return text.ToString();
    }
}
