using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Server;
using ClockLM.Tensors;
using ClockLM.Tokenizers;

namespace ClockLM.Tests.Server;

/// <summary>
/// A models folder: the built-in model (clocklm-kjv.gguf), stories260K converted to GGUF (stories260K.gguf), and
/// models.json naming the alias "kjv" for the built-in model; optionally served over HTTP on a free loopback port.
/// </summary>
public sealed class ModelFolder : IAsyncDisposable
{
    private readonly TempDir _dir = new();

    public ModelFolder()
    {
        File.Copy(System.IO.Path.Combine(SharedData.RepoRoot, "models", "clocklm-kjv.gguf"), Kjv);
        using (var model = Model.Load(SharedData.Stories260K))
            LlamaGgufExport.Write(Stories, "stories260K", model.Config, (SentencePieceTokenizer)model.Tokenizer,
                separateOutput: !model.Weights.TiedOutput, typeOf: _ => GgmlType.F32, LlamaGgufExport.FromWeights(model.Weights));
        File.WriteAllText(_dir.File("models.json"), """{"aliases": {"kjv": "clocklm-kjv.gguf"}}""");
    }

    public string Path => _dir.Path;
    public string Kjv => _dir.File("clocklm-kjv.gguf");
    public string Stories => _dir.File("stories260K.gguf");

    public ModelRegistry? Registry { get; private set; }
    public ClockLMServer? Server { get; private set; }
    public HttpClient Http { get; private set; } = null!;
    public Uri Address => Server!.Address!;

    /// <summary>Serves the folder (4 slots, context 256 per model).</summary>
    public async Task<ModelFolder> ServeAsync(ModelFolderOptions? options = null)
    {
        Registry = ModelRegistry.FromFolder(Path, options ?? new ModelFolderOptions { Scheduler = new SlotSchedulerOptions { Slots = 2, ContextLength = 256 } });
        Server = new ClockLMServer(Registry, new ServerOptions { Host = "127.0.0.1", Port = 0 });
        await Server.StartAsync();
        Http = new HttpClient { BaseAddress = Server.Address, Timeout = TimeSpan.FromSeconds(60) };
        return this;
    }

    public async ValueTask DisposeAsync()
    {
        Http?.Dispose();
        if (Server is not null) await Server.DisposeAsync();
        Registry?.Dispose();
        _dir.Dispose();
    }
}
