using System.CommandLine;
using ClockLM.Models;

namespace ClockLM.Cli;

/// <summary>`--cache-type-k` and `--cache-type-v` (f32, f16 or q8_0; default f16, as in llama.cpp): how the KV cache
/// stores keys and values.</summary>
internal sealed class CacheTypeOptions
{
    public Option<string> Keys { get; } = new("--cache-type-k", "-ctk") { Description = "KV cache type of keys: f32, f16 or q8_0", DefaultValueFactory = _ => "f16" };
    public Option<string> Values { get; } = new("--cache-type-v", "-ctv") { Description = "KV cache type of values: f32, f16 or q8_0", DefaultValueFactory = _ => "f16" };

    public void AddTo(Command command)
    {
        command.Options.Add(Keys);
        command.Options.Add(Values);
    }

    /// <summary>The cache types given; a usage error names the option and the types it takes.</summary>
    public KvCacheOptions Read(ParseResult result) => new()
    {
        KeyType = Parse(result.GetValue(Keys)!, "--cache-type-k"),
        ValueType = Parse(result.GetValue(Values)!, "--cache-type-v"),
    };

    private static Tensors.GgmlType Parse(string name, string option)
    {
        try
        {
            return KvCacheOptions.ParseType(name);
        }
        catch (ArgumentException)
        {
            throw new UsageException($"{option} is '{name}', expected f32, f16 or q8_0");
        }
    }
}
