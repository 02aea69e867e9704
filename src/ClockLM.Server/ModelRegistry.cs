using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Server;

/// <summary>How a <see cref="ModelRegistry"/> over a folder loads and unloads its models.</summary>
public sealed record ModelFolderOptions
{
    /// <summary>Slots, context length and queue of each loaded model's scheduler (its worker pool comes from <see cref="Threads"/>).</summary>
    public SlotSchedulerOptions Scheduler { get; init; } = new();

    /// <summary>How each model is loaded: its kernels, and where its fallbacks are logged.</summary>
    public ModelOptions Loading { get; init; } = ModelOptions.Default;

    /// <summary>Threads each loaded model's matrix products use (a pool of Threads - 1 workers per model).</summary>
    public int Threads { get; init; } = 1;

    /// <summary>How long a model stays loaded after its last request, when the request does not say (Ollama's <c>keep_alive</c>);
    /// <see cref="Timeout.InfiniteTimeSpan"/> keeps models until they are evicted.</summary>
    public TimeSpan KeepAlive { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Most bytes the loaded models may take together (estimated as file size plus KV caches); null for no limit.
    /// Loading a model unloads the least recently used idle ones until it fits.</summary>
    public long? MaxLoadedBytes { get; init; }

    /// <summary>A keep-alive as Ollama reads it: Go's duration syntax, [-]N unit (N unit)... with units ns, us, µs, ms, s, m,
    /// h (<c>5m</c>, <c>1h30m</c>), or a bare number of seconds; negative means forever (<see cref="Timeout.InfiniteTimeSpan"/>).
    /// Null when the text is not a duration.</summary>
    public static TimeSpan? ParseKeepAlive(string text)
    {
        text = text.Trim();
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double bare))
            return !double.IsFinite(bare) || Math.Abs(bare) > 1e9 ? null : bare < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(bare);
        bool negative = text.StartsWith('-');
        string rest = text.TrimStart('-', '+');
        if (rest.Length == 0) return null;
        double total = 0; // seconds
        int i = 0;
        while (i < rest.Length)
        {
            int numberStart = i;
            while (i < rest.Length && (char.IsAsciiDigit(rest[i]) || rest[i] == '.')) i++;
            if (i == numberStart || !double.TryParse(rest[numberStart..i], NumberStyles.Float, CultureInfo.InvariantCulture, out double n)) return null;
            int unitStart = i;
            while (i < rest.Length && !char.IsAsciiDigit(rest[i]) && rest[i] != '.') i++;
            double scale = rest[unitStart..i] switch
            {
                "ns" => 1e-9, "us" or "µs" => 1e-6, "ms" => 1e-3, "s" => 1, "m" => 60, "h" => 3600,
                _ => double.NaN,
            };
            if (double.IsNaN(scale)) return null;
            total += n * scale;
        }
        if (total > 1e9) return null;
        return negative && total > 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(total);
    }
}

/// <summary>A model the server can run: its name in requests, its file and the other names it answers to.</summary>
/// <param name="Name">The name in requests and listings: the file's name without <c>.gguf</c>, or an alias from models.json.</param>
/// <param name="Path">The GGUF file.</param>
public sealed record ModelEntry(string Name, string Path)
{
    /// <summary>True when <paramref name="requested"/> names this model: its name, or its name with Ollama's <c>:latest</c> tag, ignoring case.</summary>
    public bool Answers(string requested) =>
        string.Equals(requested, Name, StringComparison.OrdinalIgnoreCase)
        || string.Equals(requested, Name + ":latest", StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// The models a server runs: one model given at start (kept loaded), or every GGUF file of a folder, loaded on first use
/// and unloaded after its keep-alive or when the memory budget needs room (least recently used first). A model in use
/// by a request is never unloaded. Thread-safe.
/// </summary>
public sealed class ModelRegistry : IDisposable
{
    /// <summary>The optional file in a models folder that names aliases: <c>{"aliases": {"NAME": "FILE.gguf"}}</c>.</summary>
    public const string AliasFile = "models.json";

    private readonly List<ModelEntry> _entries;
    private readonly ModelFolderOptions _options;
    private readonly Dictionary<string, LoadedModel> _loaded = []; // by file: an alias shares its file's loaded model
    private readonly Dictionary<(string Path, long Length, DateTime Modified), ModelSummary> _summaries = [];
    private readonly Lock _gate = new();
    private readonly Lock _loading = new();
    private readonly Timer? _expiry;
    private SchedulerStats _retired = new(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, TimeSpan.Zero);
    private bool _disposed;

    private ModelRegistry(List<ModelEntry> entries, ModelFolderOptions options, bool expire)
    {
        _entries = entries;
        _options = options;
        if (expire) _expiry = new Timer(_ => UnloadExpired(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>How long a model stays loaded after its last request when the request does not say.</summary>
    public TimeSpan KeepAlive => _options.KeepAlive;

    /// <summary>Slots each model gets when loaded.</summary>
    public int Slots => _options.Scheduler.Slots;

    /// <summary>The context each slot of <paramref name="summary"/>'s model gets when loaded.</summary>
    internal int ContextLength(ModelSummary summary) => _options.Scheduler.ContextLength ?? summary.ContextLength;

    /// <summary>The models, in name order.</summary>
    public IReadOnlyList<ModelEntry> Models => _entries;

    /// <summary>A registry of the one model <paramref name="scheduler"/> runs, always loaded; the caller keeps
    /// ownership of the scheduler and its model. Requests may steer it with <paramref name="steeringVectors"/>, by name.</summary>
    public static ModelRegistry ForScheduler(SlotScheduler scheduler, string name, IReadOnlyDictionary<string, ControlVector>? steeringVectors = null)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        var entry = new ModelEntry(name, scheduler.Model.Path);
        var registry = new ModelRegistry([entry], new ModelFolderOptions { KeepAlive = Timeout.InfiniteTimeSpan }, expire: false);
        registry._loaded[entry.Path] = new LoadedModel(entry, entry.Answers, scheduler.Model, scheduler, pool: null, owned: false, TimeSpan.Zero, 0, steeringVectors)
        {
            Pinned = true,
        };
        return registry;
    }

    /// <summary>A registry of no model (a server that holds a vocabulary alone).</summary>
    public static ModelRegistry Empty() => new([], new ModelFolderOptions { KeepAlive = Timeout.InfiniteTimeSpan }, expire: false);

    /// <summary>
    /// A registry of every <c>*.gguf</c> file in <paramref name="directory"/>, named by file name without extension,
    /// plus the aliases of <c>models.json</c> when present. Nothing is loaded yet.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="ArgumentException">models.json is malformed, names a missing file, or a name is taken twice; or the folder has no model.</exception>
    public static ModelRegistry FromFolder(string directory, ModelFolderOptions? options = null)
    {
        options ??= new ModelFolderOptions();
        if (options.Threads < 1) throw new ArgumentOutOfRangeException(nameof(options), options.Threads, "threads must be 1 or more");
        if (options.MaxLoadedBytes is <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.MaxLoadedBytes, "the memory budget must be positive");
        var entries = ReadFolder(directory);
        if (entries.Count == 0) throw new ArgumentException($"{directory}: no .gguf model files in the folder");
        return new ModelRegistry(entries, options, expire: true);
    }

    /// <summary>The models of a folder, in name order: every <c>*.gguf</c> file named by file name without extension,
    /// plus the aliases of <c>models.json</c> when present. Reads no model.</summary>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="ArgumentException">models.json is malformed, names a missing file, or a name is taken twice.</exception>
    public static List<ModelEntry> ReadFolder(string directory)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"{directory}: no such models folder");
        var entries = Directory.EnumerateFiles(directory, "*.gguf")
            .Select(f => new ModelEntry(Path.GetFileNameWithoutExtension(f), Path.GetFullPath(f)))
            .ToList();
        string aliasPath = Path.Combine(directory, AliasFile);
        if (File.Exists(aliasPath)) entries.AddRange(ReadAliases(aliasPath, directory, entries));
        var byName = entries.GroupBy(e => e.Name, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (byName is not null) throw new ArgumentException($"{aliasPath}: the name '{byName.Last().Name}' is taken twice (names ignore case): {string.Join(" and ", byName.Select(e => Path.GetFileName(e.Path)))}");
        entries.Sort((a, b) => string.Compare(a.Name, b.Name, StringComparison.OrdinalIgnoreCase));
        return entries;
    }

    private static IEnumerable<ModelEntry> ReadAliases(string path, string directory, List<ModelEntry> files)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"{path}: not valid JSON: {e.Message}");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ArgumentException($"{path}: expected an object {{\"aliases\": {{\"NAME\": \"FILE.gguf\"}}}}");
            var aliases = new List<ModelEntry>();
            foreach (var property in root.EnumerateObject())
            {
                if (property.Name != "aliases") throw new ArgumentException($"{path}: unknown field '{property.Name}'; expected only 'aliases'");
                if (property.Value.ValueKind != JsonValueKind.Object) throw new ArgumentException($"{path}: aliases must be an object {{\"NAME\": \"FILE.gguf\"}}");
                foreach (var alias in property.Value.EnumerateObject())
                {
                    if (alias.Name.Length == 0 || alias.Name.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
                        throw new ArgumentException($"{path}: aliases has the name '{alias.Name}'; expected a non-empty name without spaces");
                    if (alias.Value.ValueKind != JsonValueKind.String)
                        throw new ArgumentException($"{path}: aliases.{alias.Name} must be a string naming a .gguf file in {directory}");
                    string target = alias.Value.GetString()!;
                    // A file name in the folder (with or without .gguf); no paths, so models.json cannot reach outside it.
                    var file = files.FirstOrDefault(f => string.Equals(Path.GetFileName(f.Path), target, StringComparison.OrdinalIgnoreCase))
                        ?? files.FirstOrDefault(f => f.Answers(target))
                        ?? throw new ArgumentException($"{path}: aliases.{alias.Name} is '{target}'; expected one of the .gguf files in {directory}: {string.Join(", ", files.Select(f => Path.GetFileName(f.Path)))}");
                    aliases.Add(new ModelEntry(alias.Name, file.Path));
                }
            }
            return aliases;
        }
    }

    /// <summary>
    /// The model a request names. An absent name picks the only model, or the only loaded one.
    /// </summary>
    /// <exception cref="ApiException">404 naming the available models when none answers; 400 when no name is given and several could.</exception>
    public ModelEntry Find(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            if (_entries.Count == 1) return _entries[0];
            lock (_gate)
                if (_loaded.Count == 1) return _loaded.Values.First().Entry;
            throw ApiException.BadRequest($"model is required: this server runs {Available()}", "model");
        }
        return _entries.FirstOrDefault(e => e.Answers(name))
            ?? throw new ApiException(404, $"model '{name}' not found; available: {Available()}", "invalid_request_error", "model", "model_not_found");
    }

    private string Available() => string.Join(", ", _entries.Select(e => e.Name));

    /// <summary>
    /// What a listing shows of <paramref name="entry"/>: the loaded model's summary, or the file header's (read once per
    /// version of the file).
    /// </summary>
    /// <exception cref="ApiException">500 when the file cannot be read as a model.</exception>
    internal ModelSummary Summary(ModelEntry entry)
    {
        lock (_gate)
            if (_loaded.TryGetValue(entry.Path, out var loaded)) return loaded.Summary;
        var file = new FileInfo(entry.Path);
        var key = (entry.Path, file.Exists ? file.Length : -1, file.Exists ? file.LastWriteTimeUtc : default);
        lock (_gate)
            if (_summaries.TryGetValue(key, out var known)) return known;
        ModelSummary summary;
        try
        {
            summary = ModelSummary.Read(entry.Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Gguf.GgufFormatException)
        {
            throw new ApiException(500, $"model '{entry.Name}': {e.Message}", "server_error", "model", "model_unreadable");
        }
        lock (_gate) _summaries[key] = summary;
        return summary;
    }

    /// <summary>The loaded models, most recently used first.</summary>
    internal IReadOnlyList<LoadedModel> Loaded
    {
        get
        {
            lock (_gate) return _loaded.Values.OrderByDescending(m => m.LastUsed).ToList();
        }
    }

    /// <summary>The loaded models with when each unloads if it stays idle (read together, under the lock): null while
    /// in use, DateTime.MaxValue for never.</summary>
    internal IReadOnlyList<(LoadedModel Model, DateTime? ExpiresAt)> Expiries
    {
        get
        {
            lock (_gate) return _loaded.Values.OrderByDescending(m => m.LastUsed).Select(m => (m, m.Pinned ? DateTime.MaxValue : m.ExpiresAt)).ToList();
        }
    }

    /// <summary>Fast paths the loaded models run without (each model's <see cref="LlamaWeights.KernelFallbacks"/>), added up.</summary>
    internal int KernelFallbacks
    {
        get
        {
            lock (_gate) return _loaded.Values.Sum(m => m.Model.Weights.KernelFallbacks.Count);
        }
    }

    /// <summary>Counters and load of every loaded model's scheduler, plus the counters of those unloaded.</summary>
    public SchedulerStats Stats
    {
        get
        {
            lock (_gate) return _loaded.Values.Select(m => m.Scheduler.Stats).Aggregate(_retired, Add);
        }
    }

    /// <summary>
    /// The loaded model for <paramref name="entry"/>, loading it first when needed (and unloading idle ones the budget
    /// needs room from). The lease keeps it loaded; disposing the lease starts its keep-alive
    /// (<paramref name="keepAlive"/>, or the folder's default when null; zero unloads it at once, negative never).
    /// </summary>
    /// <exception cref="ApiException">503 when the budget cannot be met because the other models are in use.</exception>
    internal ModelLease Acquire(ModelEntry entry, TimeSpan? keepAlive)
    {
        if (TryLease(entry, keepAlive) is { } lease) return lease;
        lock (_loading)
        {
            if (TryLease(entry, keepAlive) is { } again) return again; // loaded by the request we waited for
            long bytes = EstimateBytes(entry);
            MakeRoom(entry, bytes);
            long start = Stopwatch.GetTimestamp();
            var pool = new WorkerPool(_options.Threads - 1);
            Model? model = null;
            try
            {
                model = Model.Load(entry.Path, tokenizerPath: null, _options.Loading);
                var scheduler = new SlotScheduler(model, _options.Scheduler with { Pool = pool });
                var primary = PrimaryEntry(entry);
                bool Answers(string name) => _entries.Any(e => e.Path == entry.Path && e.Answers(name));
                var loaded = new LoadedModel(primary, Answers, model, scheduler, pool, owned: true, Stopwatch.GetElapsedTime(start), bytes);
                lock (_gate)
                {
                    ObjectDisposedException.ThrowIf(_disposed, this);
                    _loaded[entry.Path] = loaded;
                    return Lease(loaded, keepAlive, loaded.LoadDuration);
                }
            }
            catch (Exception e)
            {
                model?.Dispose();
                pool.Dispose();
                if (e is ApiException or ObjectDisposedException) throw;
                throw new ApiException(500, $"model '{entry.Name}' could not be loaded from {entry.Path}: {e.Message}", "server_error", "model", "model_load_failed");
            }
        }
    }

    private ModelLease? TryLease(ModelEntry entry, TimeSpan? keepAlive)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _loaded.TryGetValue(entry.Path, out var loaded) ? Lease(loaded, keepAlive, TimeSpan.Zero) : null;
        }
    }

    // Under _gate.
    private ModelLease Lease(LoadedModel loaded, TimeSpan? keepAlive, TimeSpan loadDuration)
    {
        loaded.Leases++;
        loaded.LastUsed = DateTime.UtcNow;
        loaded.ExpiresAt = null; // in use: not expiring
        return new ModelLease(this, loaded, keepAlive ?? _options.KeepAlive, loadDuration);
    }

    internal void Release(LoadedModel loaded, TimeSpan keepAlive)
    {
        LoadedModel? unload = null;
        lock (_gate)
        {
            loaded.Leases--;
            loaded.LastUsed = DateTime.UtcNow;
            if (loaded.Leases > 0 || loaded.Pinned) return;
            if (keepAlive == TimeSpan.Zero && _loaded.Remove(loaded.Entry.Path)) unload = loaded;
            else loaded.ExpiresAt = keepAlive < TimeSpan.Zero ? DateTime.MaxValue : loaded.LastUsed + keepAlive;
        }
        if (unload is not null) Retire(unload);
    }

    /// <summary>Unloads <paramref name="entry"/> now if it is loaded and idle (Ollama's <c>keep_alive: 0</c> with nothing to run); false otherwise.</summary>
    internal bool Unload(ModelEntry entry)
    {
        LoadedModel? unload;
        lock (_gate)
        {
            if (!_loaded.TryGetValue(entry.Path, out unload) || unload.Leases > 0 || unload.Pinned) return false;
            _loaded.Remove(entry.Path);
        }
        Retire(unload);
        return true;
    }

    /// <summary>The entry named after the file <paramref name="entry"/> runs (an alias's file), or the entry itself.</summary>
    private ModelEntry PrimaryEntry(ModelEntry entry) =>
        _entries.FirstOrDefault(e => e.Path == entry.Path && e.Name.Equals(Path.GetFileNameWithoutExtension(e.Path), StringComparison.OrdinalIgnoreCase)) ?? entry;

    /// <summary>The memory a model is expected to take once loaded: its file (mapped) plus every slot's KV cache.</summary>
    private long EstimateBytes(ModelEntry entry)
    {
        var summary = Summary(entry);
        var c = summary.Config;
        long context = _options.Scheduler.ContextLength ?? c.ContextLength;
        var cache = _options.Scheduler.KvCache ?? KvCacheOptions.Default; // a key and a value row per position and layer
        long perPosition = c.Layers * (GgmlTypeInfo.RowBytes(cache.KeyType, c.KvDim) + GgmlTypeInfo.RowBytes(cache.ValueType, c.KvDim));
        return summary.FileBytes + _options.Scheduler.Slots * context * perPosition;
    }

    private void MakeRoom(ModelEntry entry, long bytes)
    {
        if (_options.MaxLoadedBytes is not { } budget) return;
        if (bytes > budget)
            throw new ApiException(503, $"model '{entry.Name}' needs about {bytes} bytes loaded (file and KV caches) but the server's --max-loaded-bytes is {budget}",
                "server_error", "model", "model_too_large");
        var evicted = new List<LoadedModel>();
        lock (_gate)
        {
            long used = _loaded.Values.Sum(m => m.Bytes);
            foreach (var idle in _loaded.Values.Where(m => m.Leases == 0 && !m.Pinned).OrderBy(m => m.LastUsed).ToList())
            {
                if (used + bytes <= budget) break;
                _loaded.Remove(idle.Entry.Path);
                evicted.Add(idle);
                used -= idle.Bytes;
            }
            if (used + bytes > budget)
            {
                foreach (var m in evicted) _loaded[m.Entry.Path] = m; // nothing is unloaded for a load that cannot happen
                throw new ApiException(503, $"model '{entry.Name}' needs about {bytes} bytes but the models in use ({string.Join(", ", _loaded.Values.Select(m => m.Entry.Name))}) leave {budget - used} of --max-loaded-bytes {budget}; try again when they finish",
                    "server_busy", "model", "insufficient_memory");
            }
        }
        foreach (var m in evicted) Retire(m);
    }

    private void UnloadExpired()
    {
        List<LoadedModel> expired;
        lock (_gate)
        {
            if (_disposed) return;
            var now = DateTime.UtcNow;
            expired = _loaded.Values.Where(m => m.Leases == 0 && !m.Pinned && m.ExpiresAt <= now).ToList();
            foreach (var m in expired) _loaded.Remove(m.Entry.Path);
        }
        foreach (var m in expired) Retire(m);
    }

    /// <summary>Keeps the unloaded model's counters and releases it.</summary>
    private void Retire(LoadedModel loaded)
    {
        var stats = loaded.Scheduler.Stats;
        lock (_gate) _retired = Add(_retired, stats with { Slots = 0, ActiveSlots = 0, QueueDepth = 0, QueueCapacity = 0, KvCacheUsed = 0, KvCacheCapacity = 0 });
        loaded.Dispose();
    }

    private static SchedulerStats Add(SchedulerStats a, SchedulerStats b) => new(
        a.Slots + b.Slots, a.ActiveSlots + b.ActiveSlots, a.QueueDepth + b.QueueDepth, a.QueueCapacity + b.QueueCapacity,
        a.Completed + b.Completed, a.Cancelled + b.Cancelled, a.Failed + b.Failed, a.Rejected + b.Rejected,
        a.PromptTokens + b.PromptTokens, a.GeneratedTokens + b.GeneratedTokens, a.KvCacheUsed + b.KvCacheUsed,
        a.KvCacheCapacity + b.KvCacheCapacity, a.BusyTime + b.BusyTime)
    {
        BatchedTokens = a.BatchedTokens + b.BatchedTokens,
        BatchFallbacks = a.BatchFallbacks + b.BatchFallbacks,
        ContextShifts = a.ContextShifts + b.ContextShifts,
    };

    /// <summary>Unloads every model this registry loaded.</summary>
    public void Dispose()
    {
        List<LoadedModel> all;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            all = _loaded.Values.ToList();
            _loaded.Clear();
        }
        _expiry?.Dispose();
        foreach (var m in all) m.Dispose();
    }
}

/// <summary>A model in memory: its scheduler and request handlers.</summary>
internal sealed class LoadedModel : IDisposable
{
    private readonly WorkerPool? _pool;
    private readonly bool _owned;

    public LoadedModel(ModelEntry entry, Func<string, bool> answers, Model model, SlotScheduler scheduler, WorkerPool? pool, bool owned, TimeSpan loadDuration, long bytes,
        IReadOnlyDictionary<string, ControlVector>? steeringVectors = null)
    {
        Entry = entry;
        Model = model;
        Scheduler = scheduler;
        _pool = pool;
        _owned = owned;
        LoadDuration = loadDuration;
        Bytes = bytes;
        Prompt = new ChatPrompt(model);
        OpenAi = new OpenAiEndpoints(scheduler, entry.Name, answers,
            new SteeringRequest(model.Config, steeringVectors ?? new Dictionary<string, ControlVector>(), scheduler.Steering));
        Summary = ModelSummary.Of(model);
    }

    /// <summary>The entry named after the file (aliases share the loaded model).</summary>
    public ModelEntry Entry { get; }
    public Model Model { get; }
    public SlotScheduler Scheduler { get; }
    public ChatPrompt Prompt { get; }
    public OpenAiEndpoints OpenAi { get; }
    public ModelSummary Summary { get; }
    public TimeSpan LoadDuration { get; }
    /// <summary>Estimated memory (file and KV caches).</summary>
    public long Bytes { get; }
    /// <summary>Loaded from the command line: never unloaded.</summary>
    public bool Pinned { get; init; }

    // Guarded by the registry's lock.
    public int Leases;
    public DateTime LastUsed = DateTime.UtcNow;
    /// <summary>When it unloads if still idle; null while in use; DateTime.MaxValue for never.</summary>
    public DateTime? ExpiresAt;

    public void Dispose()
    {
        if (!_owned) return;
        Scheduler.Dispose();
        _pool?.Dispose();
        Model.Dispose();
    }
}

/// <summary>Keeps a model loaded while a request uses it.</summary>
internal sealed class ModelLease(ModelRegistry registry, LoadedModel model, TimeSpan keepAlive, TimeSpan loadDuration) : IDisposable
{
    private int _released;

    public LoadedModel Model { get; } = model;

    /// <summary>Time this request spent loading the model (zero when it was loaded already).</summary>
    public TimeSpan LoadDuration { get; } = loadDuration;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) registry.Release(Model, keepAlive);
    }
}
