using System.Runtime.InteropServices;
using GuidedDiffusion.Distributed;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Cli;

/// <summary>
/// What every training command does around its job: runs it in the data-parallel group
/// (<see cref="TrainingJob.InGroup"/>), turns Ctrl-C / SIGTERM into "finish the step, save, exit 0", shows progress
/// on rank 0 and reports the result.
/// </summary>
internal static class TrainingRunner
{
    /// <summary>Runs <paramref name="train"/> with <paramref name="run"/>'s lines on rank 0's progress display (nowhere on the other ranks).</summary>
    public static int Run(string distributedMode, RunContext run, Func<ICommunicator, RunContext, ConsoleProgress, CancellationToken, TrainingResult> train) =>
        TrainingJob.InGroup(distributedMode, comm =>
        {
            using var stop = new CancellationTokenSource();
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.Cancel(); });
            void OnCancelKey(object? sender, ConsoleCancelEventArgs e)
            {
                if (stop.IsCancellationRequested) return; // a second Ctrl-C kills immediately
                e.Cancel = true;
                CliConsole.Error.WriteLine("\nstop requested: finishing the current step and saving a checkpoint (Ctrl-C again to abort)...");
                stop.Cancel();
            }
            // Removed again: a process that runs several commands (tests) must not keep a disposed run's handler.
            Console.CancelKeyPress += OnCancelKey;
            TrainingResult result;
            using var progress = new ConsoleProgress(enabled: comm.IsMain);
            try
            {
                result = train(comm, run with { Output = comm.IsMain ? progress.Writer : TextWriter.Null }, progress, stop.Token);
            }
            finally
            {
                Console.CancelKeyPress -= OnCancelKey;
            }
            progress.Finish();
            if (comm.IsMain)
                CliConsole.Out.WriteLine(result.Interrupted
                    ? $"Stopped after {result.CompletedSteps} updates; resume with --resume_checkpoint {result.LastCheckpoint}"
                    : $"Done: {result.CompletedSteps} updates. Checkpoint: {result.LastCheckpoint}");
            return 0;
        });
}
