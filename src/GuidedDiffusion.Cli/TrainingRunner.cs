using System.Runtime.InteropServices;
using GuidedDiffusion.Distributed;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Cli;

/// <summary>
/// What every training command does around its job: picks the communicator, sizes torch's threads, turns
/// Ctrl-C / SIGTERM into "finish the step, save, exit 0", shows progress on rank 0, reports the result, and
/// under MPI makes a failing rank abort the whole job.
/// </summary>
internal static class TrainingRunner
{
    public static int Run(string distributedMode, Func<ICommunicator, ConsoleProgress, CancellationToken, TrainingResult> train)
    {
        using var comm = Communicators.Create(distributedMode);
        TorchThreads.Configure(comm);
        int Body()
        {
            using var stop = new CancellationTokenSource();
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.Cancel(); });
            Console.CancelKeyPress += (_, e) =>
            {
                if (stop.IsCancellationRequested) return; // a second Ctrl-C kills immediately
                e.Cancel = true;
                Console.Error.WriteLine("\nstop requested: finishing the current step and saving a checkpoint (Ctrl-C again to abort)...");
                stop.Cancel();
            };

            using var progress = new ConsoleProgress(enabled: comm.IsMain);
            var result = train(comm, progress, stop.Token);
            progress.Finish();
            if (comm.IsMain)
                Console.WriteLine(result.Interrupted
                    ? $"Stopped after {result.CompletedSteps} updates; resume with --resume_checkpoint {result.LastCheckpoint}"
                    : $"Done: {result.CompletedSteps} updates. Checkpoint: {result.LastCheckpoint}");
            return 0;
        }
        // Under MPI a failing rank must abort the job, or the others wait forever in a collective.
        return comm.WorldSize > 1 ? Communicators.RunGuarded(comm, Body) : Body();
    }
}
