using System.Diagnostics;
using System.Text.Json;

namespace ClockLM.Clock;

/// <summary>
/// Writes a <see cref="ClockTrace"/> as Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and chrome://tracing
/// open: one track (thread) per stage plus one for instruction fetch and commit, one complete ("X") slice per
/// (pass, layer, stage) — a pass is a prompt chunk or one token —, timestamps in microseconds from the first pass; with
/// sparse autoencoders, a features track with one instant event per token (its most active features, in the args).
/// </summary>
public static class PerfettoTrace
{
    /// <summary>Track id of the embedding lookup and commit slices; stages use 1 + (int)stage.</summary>
    public const int TokenTrack = 0;

    /// <summary>Track id of the sparse-autoencoder features: one instant event per token, when its pass committed.</summary>
    public const int FeatureTrack = 1 + 5; // after the five stage tracks

    /// <summary>Writes the trace to <paramref name="path"/>; <paramref name="tokenText"/> names each token id.</summary>
    public static void Write(ClockTrace trace, Func<int, string> tokenText, string path)
    {
        using var stream = File.Create(path);
        Write(trace, tokenText, stream);
    }

    /// <summary>Writes the trace to <paramref name="stream"/>.</summary>
    public static void Write(ClockTrace trace, Func<int, string> tokenText, Stream stream)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = false });
        long origin = trace.Recorder.Tokens.Count > 0 ? trace.Recorder.Tokens[0].StartTimestamp : 0;
        double Micros(long ticks) => ticks * 1e6 / Stopwatch.Frequency;

        json.WriteStartObject();
        json.WriteString("displayTimeUnit", "ns");
        json.WriteStartArray("traceEvents");
        Metadata(json, "process_name", TokenTrack, "ClockLM processor");
        Metadata(json, "thread_name", TokenTrack, "token (embedding, commit)");
        foreach (var stage in StageNames.All)
        {
            Metadata(json, "thread_name", 1 + (int)stage, stage.Name());
            json.WriteStartObject();
            json.WriteString("name", "thread_sort_index");
            json.WriteString("ph", "M");
            json.WriteNumber("pid", 1);
            json.WriteNumber("tid", 1 + (int)stage);
            json.WriteStartObject("args");
            json.WriteNumber("sort_index", 1 + (int)stage);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        foreach (var t in trace.Recorder.Tokens)
        {
            string text = t.Rows == 1 ? $"'{tokenText(t.Token)}'" : $"{t.Rows} tokens from '{tokenText(t.Token)}'";
            Slice(json, $"embed {text}", "token", TokenTrack, Micros(t.StartTimestamp - origin), Micros(t.EmbeddingTicks), t.Position, t.Rows, -1, null);
            if (t.CommitTicks > 0)
            {
                long commitStart = t.StartTimestamp + t.ElapsedTicks - t.CommitTicks;
                Slice(json, $"commit {text}", "token", TokenTrack, Micros(commitStart - origin), Micros(t.CommitTicks), t.Position, t.Rows, -1, null);
            }
        }
        if (trace.FeatureHooks.Count > 0)
        {
            Metadata(json, "thread_name", FeatureTrack, "features (sparse autoencoders)");
            foreach (var token in trace.Tokens)
            {
                var pass = trace.Passes[token.Pass].Timing;
                json.WriteStartObject();
                json.WriteString("name", $"features @{token.Position} '{tokenText(token.Token)}'");
                json.WriteString("cat", "features");
                json.WriteString("ph", "i");
                json.WriteString("s", "t");
                json.WriteNumber("pid", 1);
                json.WriteNumber("tid", FeatureTrack);
                json.WriteNumber("ts", Math.Round(Micros(pass.StartTimestamp + pass.ElapsedTicks - origin), 3));
                json.WriteStartObject("args");
                json.WriteNumber("position", token.Position);
                foreach (var f in token.Features)
                {
                    json.WriteStartArray(f.Hook);
                    foreach (var a in f.Top)
                    {
                        json.WriteStartObject();
                        json.WriteNumber("feature", a.Feature);
                        json.WriteNumber("activation", Math.Round(a.Activation, 4));
                        json.WriteEndObject();
                    }
                    json.WriteEndArray();
                }
                json.WriteEndObject();
                json.WriteEndObject();
            }
        }
        foreach (var e in trace.Recorder.Stages)
            Slice(json, e.Rows == 1 ? $"L{e.Layer} {e.Stage.Name()}" : $"L{e.Layer} {e.Stage.Name()} x{e.Rows}", "stage", 1 + (int)e.Stage,
                Micros(e.StartTimestamp - origin), Micros(e.ElapsedTicks), e.Position, e.Rows, e.Layer, e);
        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void Metadata(Utf8JsonWriter json, string kind, int tid, string name)
    {
        json.WriteStartObject();
        json.WriteString("name", kind);
        json.WriteString("ph", "M");
        json.WriteNumber("pid", 1);
        json.WriteNumber("tid", tid);
        json.WriteStartObject("args");
        json.WriteString("name", name);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void Slice(Utf8JsonWriter json, string name, string category, int tid, double ts, double dur, int position, int rows, int layer, StageEvent? e)
    {
        json.WriteStartObject();
        json.WriteString("name", name);
        json.WriteString("cat", category);
        json.WriteString("ph", "X");
        json.WriteNumber("pid", 1);
        json.WriteNumber("tid", tid);
        json.WriteNumber("ts", Math.Round(ts, 3));
        json.WriteNumber("dur", Math.Round(dur, 3));
        json.WriteStartObject("args");
        json.WriteNumber("position", position);
        json.WriteNumber("rows", rows);
        if (layer >= 0) json.WriteNumber("layer", layer);
        if (e is { } s)
        {
            json.WriteString("stage", s.Stage.Name());
            json.WriteNumber("weight_bytes", s.WeightBytes);
            json.WriteNumber("kv_bytes_read", s.KvBytesRead);
            json.WriteNumber("kv_bytes_written", s.KvBytesWritten);
            json.WriteNumber("flops", s.Flops);
        }
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
