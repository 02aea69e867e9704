namespace ClockLM.Bench;

/// <summary>Runs the same model file through ClockLM and llama.cpp, alternating A and B runs.</summary>
public static class VersusLlamaCpp
{
    public static int Run(string[] args)
    {
        Console.Error.WriteLine("the --vs-llamacpp harness is not built yet");
        return 2;
    }
}
